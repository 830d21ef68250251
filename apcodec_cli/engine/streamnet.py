"""The streamable model's networks packed for streaming: a few frames at a time, fast.

A stream coded frame by frame hands every layer about 8 STFT frames at a time (one code
frame), where the cost is the number of tensor operations, not the arithmetic. So this
module runs the networks of `nn/model.py` rearranged for few frames, with the definitions
they share (`blocks.convnext_v2`, `causal.overlap_taps`, `quantizer.nearest`,
`model.wrapped_phase`, and the frames each causal layer remembers):

* The two parallel branches of each side (amplitude and phase) run as one batch: tensors
  are (2, B, T, C), branch first, channels last, and a layer of both branches is one
  batched matrix product.
* Convolutions are matrix products with windows of the remembered and the new frames;
  their weights are reshaped into those matrices once, when a `StreamNet` is built.
* The affine parts of LayerNorm and GRN fold into the matrix product after them, the
  quantizer's codebooks are normalised (encoder) and projected (decoder) once.

It computes what the causal layers compute on whole sequences, up to float rounding
(tests/engine/test_stream.py). A step's state (`StepState`) holds, per layer, the frames it must
remember: the last kernel_size - 1 inputs of a convolution, the frames of an unfinished
group of the strided one, the GRN's window of energies with their float64 running sum.
Pushes longer than the GRN window are cut into pieces of at most that length.
"""

from __future__ import annotations

import dataclasses
import weakref

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.blocks import ConvNeXtBlock, ConvNeXtStack, convnext_v2
from ..nn.causal import overlap_taps
from ..nn.grn import ENERGY_FLOOR, grn_scale
from ..nn.model import APCodec, wrapped_phase
from ..nn.quantizer import nearest, unit_entries

Tensor = torch.Tensor


class StepState:
    """What one stream's steps remember, by layer name (empty: nothing came before)."""

    def __init__(self) -> None:
        self.frames: dict[str, Tensor] = {}
        self.rings: dict[str, "_Ring"] = {}

    @property
    def nbytes(self) -> int:
        """Bytes the state holds (it grows to its full size with the first frames)."""
        tensors = [*self.frames.values()] + [t for r in self.rings.values()
                                             for t in (r.frames, r.total)]
        return sum(t.nelement() * t.element_size() for t in tensors)

    def extend(self, name: str, x: Tensor, keep: int) -> Tensor:
        """The remembered `keep` frames of layer `name` followed by x, along dim -2;
        remembers the last `keep` frames of the result."""
        past = self.frames.get(name)
        if past is None:
            past = x.new_zeros(*x.shape[:-2], keep, x.shape[-1])
        xx = torch.cat([past, x], dim=-2)
        self.frames[name] = xx[..., xx.shape[-2] - keep:, :]
        return xx


class _Ring:
    """The last `window` frames of energies (..., window, C) in float64, oldest at `start`,
    and their sum (..., 1, C): window sums in a few operations per push."""

    def __init__(self, like: Tensor, window: int) -> None:
        self.frames = like.new_zeros(*like.shape[:-2], window, like.shape[-1],
                                     dtype=torch.float64)
        self.total = like.new_zeros(*like.shape[:-2], 1, like.shape[-1], dtype=torch.float64)
        self.start = 0

    def push(self, new: Tensor) -> Tensor:
        """Add T <= window frames; return the float64 window sums ending at each."""
        window, n, start = self.frames.shape[-2], new.shape[-2], self.start
        if start + n <= window:  # the usual case: one slice
            slots: slice | Tensor = slice(start, start + n)
        else:
            slots = (start + torch.arange(n, device=new.device)) % window
        sums = (new - self.frames[..., slots, :]).cumsum(dim=-2).add_(self.total)
        # A slice copies with the cast; an index (wrapping around) needs the dtype.
        self.frames[..., slots, :] = new if isinstance(slots, slice) else new.double()
        self.total = sums[..., -1:, :]
        self.start = (start + n) % window
        return sums


def _windows(xx: Tensor, k: int, stride: int = 1) -> Tensor:
    """(..., T', C) frames -> (..., T, C * k) windows of k frames, flattened like a conv
    weight (out, in, k) is as (out, in * k)."""
    w = xx.unfold(-2, k, stride)  # (..., T, C, k)
    return w.reshape(*w.shape[:-2], -1)


def _causal_windows(state: StepState, name: str, x: Tensor, history: int) -> Tensor:
    """What a causal convolution of layer `name` reads for each new frame of x: windows of
    the `history` frames before it (remembered) and itself (see `CausalConv1d.history`)."""
    return _windows(state.extend(name, x, history), history + 1)


def _conv_matrix(conv: nn.Conv1d | nn.Linear) -> Tensor:
    """A convolution (or linear) weight as the (in * k, out) matrix acting on windows."""
    w = conv.weight
    return w.reshape(w.shape[0], -1).t()


def _pair(a: Tensor, b: Tensor) -> Tensor:
    return torch.stack([a, b]).contiguous()


def _folded(norm: nn.LayerNorm, linear: nn.Linear) -> tuple[Tensor, Tensor]:
    """linear(norm(x)) as x_hat @ matrix + bias, x_hat the un-scaled normalised x."""
    return (linear.weight * norm.weight).t(), linear.bias + linear.weight @ norm.bias


def _biases(a: Tensor, b: Tensor) -> Tensor:
    """Two branches' biases (D,) as the (2, 1, D) that `_batched` adds."""
    return _pair(a, b).unsqueeze(1)


def _batched(x: Tensor, bias: Tensor, matrix: Tensor) -> Tensor:
    """(2, ..., C) @ (2, C, D) + (2, 1, D) -> (2, ..., D): one product for both branches."""
    y = torch.baddbmm(bias, x.reshape(2, -1, x.shape[-1]), matrix)
    return y.view(*x.shape[:-1], matrix.shape[-1])


@dataclasses.dataclass
class _Block:
    """One ConvNeXt v2 block of both branches."""

    dw: Tensor  # (2, 1, 1, C, k) depthwise taps
    dw_bias: Tensor  # (2, 1, 1, C)
    w1: Tensor  # (2, C, H): LayerNorm's affine folded in
    b1: Tensor  # (2, 1, H)
    gamma: Tensor  # (2, 1, 1, H) GRN
    w2: Tensor  # (2, H, C): GRN's beta folded into the bias
    b2: Tensor  # (2, 1, C)
    history: int  # frames the depthwise convolution remembers
    window: int
    eps: float


def _pack_block(a: ConvNeXtBlock, b: ConvNeXtBlock) -> _Block:
    w1, b1 = zip(*(_folded(x.norm, x.pwconv1) for x in (a, b)))
    return _Block(
        dw=_pair(a.dwconv.weight[:, 0], b.dwconv.weight[:, 0])[:, None, None],
        dw_bias=_pair(a.dwconv.bias, b.dwconv.bias)[:, None, None],
        w1=_pair(*w1), b1=_biases(*b1),
        gamma=_pair(a.grn.gamma[0, 0], b.grn.gamma[0, 0])[:, None, None],
        w2=_pair(a.pwconv2.weight.t(), b.pwconv2.weight.t()),
        b2=_biases(*(x.pwconv2.bias + x.pwconv2.weight @ x.grn.beta[0, 0] for x in (a, b))),
        history=a.dwconv.history, window=a.grn.window, eps=a.grn.eps)


def _run_block(p: _Block, x: Tensor, state: StepState, name: str) -> Tensor:
    """(2, B, T, C) -> (2, B, T, C), T <= the GRN window: `convnext_v2` with packed parts."""

    def depthwise(x: Tensor) -> Tensor:
        xx = state.extend(name, x, p.history)
        return (xx.unfold(-2, p.history + 1, 1) * p.dw).sum(dim=-1).add_(p.dw_bias)

    def grn(h: Tensor) -> Tensor:  # h + gamma * h * scale (+ beta, folded into b2)
        ring = state.rings.get(name)
        if ring is None:
            ring = state.rings[name] = _Ring(h, p.window)
        norm = ring.push(h.square()).to(h.dtype).clamp_min_(ENERGY_FLOOR).sqrt_()
        return h.mul_(grn_scale(norm, p.eps).mul_(p.gamma).add_(1))

    return convnext_v2(x, depthwise, lambda y: _batched(F.layer_norm(y, y.shape[-1:]), p.b1, p.w1),
                       grn, lambda h: _batched(h, p.b2, p.w2))


@dataclasses.dataclass
class _Stack:
    """LayerNorm, blocks, LayerNorm and the branch's Linear after it, both branches."""

    norm_in: tuple[Tensor, Tensor]  # (2, 1, 1, C) weight and bias
    blocks: list[_Block]
    w_out: Tensor  # norm_out folded into the Linear: (2, C, C)
    b_out: Tensor


def _pack_stack(a: ConvNeXtStack, b: ConvNeXtStack, la: nn.Linear, lb: nn.Linear) -> _Stack:
    w, bias = zip(_folded(a.norm_out, la), _folded(b.norm_out, lb))
    return _Stack(
        norm_in=(_pair(a.norm_in.weight, b.norm_in.weight)[:, None, None],
                 _pair(a.norm_in.bias, b.norm_in.bias)[:, None, None]),
        blocks=[_pack_block(x, y) for x, y in zip(a.blocks, b.blocks)],
        w_out=_pair(*w), b_out=_biases(*bias))


def _run_stack(p: _Stack, x: Tensor, state: StepState, name: str) -> Tensor:
    x = torch.addcmul(p.norm_in[1], F.layer_norm(x, x.shape[-1:]), p.norm_in[0])
    for i, block in enumerate(p.blocks):
        x = _run_block(block, x, state, f"{name}.{i}")
    return _batched(F.layer_norm(x, x.shape[-1:]), p.b_out, p.w_out)


class StreamNet:
    """Packed weights of one causal model; `encode_step` and `decode_step` run them.

    Built once per model and weights (`for_model`); any number of streams share it, each
    with its own `StepState`.
    """

    def __init__(self, model: APCodec) -> None:
        c = self.config = model.config
        if not c.causal:
            raise ValueError(f"model {c.name!r} is not streamable (not causal)")
        self.history = model.encoder.fuse.history  # of every CausalConv1d (one kernel size)
        self.window = c.grn_window
        with torch.no_grad():
            self._pack_encoder(model)
            self._pack_decoder(model)

    _cache: "weakref.WeakKeyDictionary[APCodec, tuple[tuple, StreamNet]]" = \
        weakref.WeakKeyDictionary()

    @classmethod
    def for_model(cls, model: APCodec) -> "StreamNet":
        """The packed networks of `model`, re-packed if its weights changed (in place or
        moved to another device or dtype) since."""
        key = tuple((p._version, p.device, p.dtype) for p in model.parameters())
        cached = cls._cache.get(model)
        if cached is None or cached[0] != key:
            cached = cls._cache[model] = (key, cls(model))
        return cached[1]

    # ---- encoder ------------------------------------------------------------------------

    def _pack_encoder(self, model: APCodec) -> None:
        enc = model.encoder
        a, b = enc.amplitude, enc.phase
        self.e_in = (_biases(a.conv_in.bias, b.conv_in.bias),
                     _pair(_conv_matrix(a.conv_in), _conv_matrix(b.conv_in)))
        self.e_stack = _pack_stack(a.stack, b.stack, a.linear, b.linear)
        self.e_down = (_biases(a.down.bias, b.down.bias),
                       _pair(_conv_matrix(a.down), _conv_matrix(b.down)))
        self.down = (a.down.kernel_size[0], a.down.stride[0], a.down.lead, a.down.skip)
        self.e_fuse = (enc.fuse.bias, _conv_matrix(enc.fuse))
        self.vq_in = [(s.in_proj.bias, s.in_proj.weight[:, :, 0].t())
                      for s in model.quantizer.stages]
        self.vq_entries = [unit_entries(s.codebook).contiguous() for s in model.quantizer.stages]
        self.vq_out = [s.out_proj(s.codebook.weight.t().unsqueeze(0))[0].t().contiguous()
                       for s in model.quantizer.stages]  # (K, latent): each entry decoded

    def encode_step(self, log_amp: Tensor, phase: Tensor, state: StepState) -> Tensor:
        """(B, T, n_bins) spectra of the next T frames (channels last) -> (B, n_codebooks,
        N) codes of the code frames they complete."""
        x = torch.stack([log_amp, phase])  # (2, B, T, n_bins)
        pieces = [self._encode_piece(x[..., i:i + self.window, :], state)
                  for i in range(0, max(x.shape[-2], 1), self.window)]
        return torch.cat(pieces, dim=-1) if len(pieces) > 1 else pieces[0]

    def _encode_piece(self, x: Tensor, state: StepState) -> Tensor:
        h, (k, s, lead, skip) = self.history, self.down
        B = x.shape[1]
        none = torch.zeros(B, len(self.vq_in), 0, dtype=torch.long)
        if not x.shape[-2]:
            return none
        x = _batched(_causal_windows(state, "e.in", x, h), *self.e_in)
        x = _run_stack(self.e_stack, x, state, "e.stack")
        # Strided conv (`CausalDownsample`): latent n sees frames (n + 1) * s - k ..
        # (n + 1) * s - 1; the frames of a group not yet complete wait (with the `lead`
        # ones before it).
        xx = state.extend("e.down", x, lead)
        groups = (xx.shape[-2] - lead) // s
        state.frames["e.down"] = xx[..., groups * s:, :]
        if not groups:
            return none
        z = _batched(_windows(xx[..., skip:, :], k, s)[..., :groups, :], *self.e_down)
        z = z.permute(1, 2, 0, 3).reshape(B, groups, -1)  # (B, N, 2 * out): amplitude first
        latent = torch.addmm(self.e_fuse[0], _causal_windows(state, "e.fuse", z, h)
                             .reshape(B * groups, -1), self.e_fuse[1])
        return self._quantize(latent).view(B, groups, -1).transpose(1, 2).cpu()

    def _quantize(self, residual: Tensor) -> Tensor:
        """(M, latent) -> (M, n_codebooks) codes, as `ResidualVQ.encode`."""
        codes = []
        for (bias, matrix), entries, decoded in zip(self.vq_in, self.vq_entries, self.vq_out):
            index = nearest(torch.addmm(bias, residual, matrix), entries)
            residual = residual - decoded[index]
            codes.append(index)
        return torch.stack(codes, dim=-1)

    # ---- decoder ------------------------------------------------------------------------

    def _pack_decoder(self, model: APCodec) -> None:
        dec = model.decoder
        a, b = dec.amplitude, dec.phase
        self.d_in = (dec.conv_in.bias, _conv_matrix(dec.conv_in))
        # Transposed conv weight (in, out, 2s) of both branches as one (in, 2 * 2s * out)
        # matrix: taps[..., p, j, :] is branch p's tap j (see `CausalUpsample`).
        self.up_stride = a.up.stride[0]
        self.d_up = (_pair(a.up.bias, b.up.bias)[:, None, None],
                     _pair(a.up.weight, b.up.weight).permute(1, 0, 3, 2)
                     .reshape(a.up.weight.shape[0], -1).contiguous())
        self.d_conv = (_biases(a.conv.bias, b.conv.bias),
                       _pair(_conv_matrix(a.conv), _conv_matrix(b.conv)))
        self.d_stack = _pack_stack(a.stack, b.stack, a.linear, b.linear)
        self.head_amp = (dec.amplitude_head.bias, _conv_matrix(dec.amplitude_head))
        # Both matrices stay transposed views of (out, in * k) weights: for these wide
        # products with few rows that layout is about 20% faster than (in * k, out).
        self.head_phase = (torch.cat([dec.real_head.bias, dec.imag_head.bias]),
                           torch.cat([_conv_matrix(dec.real_head).t(),
                                      _conv_matrix(dec.imag_head).t()]).t())

    def decode_step(self, codes: Tensor, state: StepState) -> tuple[Tensor, Tensor]:
        """(B, n_codebooks, N) codes -> log-amplitude and phase (B, N * s, n_bins),
        channels last."""
        n = codes.shape[-1]
        per_piece = max(self.window // self.up_stride, 1)
        outs = [self._decode_piece(codes[..., i:i + per_piece], state)
                for i in range(0, max(n, 1), per_piece)]
        if len(outs) == 1:
            return outs[0]
        return torch.cat([o[0] for o in outs], dim=1), torch.cat([o[1] for o in outs], dim=1)

    def _decode_piece(self, codes: Tensor, state: StepState) -> tuple[Tensor, Tensor]:
        h, s = self.history, self.up_stride
        B, n = codes.shape[0], codes.shape[-1]
        if not n:
            empty = self.d_in[0].new_zeros(B, 0, self.config.n_bins)
            return empty, empty
        latent = sum(table[codes[:, i]] for i, table in enumerate(self.vq_out))  # (B, N, L)
        x = torch.addmm(self.d_in[0], _causal_windows(state, "d.in", latent, h)
                        .reshape(B * n, -1), self.d_in[1]).view(B, n, -1)
        # `CausalUpsample`: every tap of the frame before (remembered) and the new ones.
        xx = state.extend("d.up", x, 1)
        taps = (xx.reshape(-1, xx.shape[-1]) @ self.d_up[1]).view(B, n + 1, 2, 2 * s, -1)
        y = overlap_taps(taps, s, dim=-2)  # (B, N, 2, s, C)
        y = y.permute(2, 0, 1, 3, 4).reshape(2, B, n * s, -1).add_(self.d_up[0])
        y = _batched(_causal_windows(state, "d.conv", y, h), *self.d_conv)
        y = _run_stack(self.d_stack, y, state, "d.stack")
        win = _causal_windows(state, "d.head", y, h).reshape(2, B * n * s, -1)
        log_amp = torch.addmm(self.head_amp[0], win[0], self.head_amp[1])
        real, imag = torch.addmm(self.head_phase[0], win[1], self.head_phase[1]).chunk(2, -1)
        return log_amp.view(B, n * s, -1), wrapped_phase(real, imag).view(B, n * s, -1)
