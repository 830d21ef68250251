"""Causal layers of the streamable model (APCodec-S): whole sequences or frame by frame.

Every layer here looks only at the present frame and the past. Called as `layer(x)` it
processes a whole sequence, with zeros before its start; called as `layer(x, state)` it
processes the *next* frames of a stream and keeps in `state` what it must remember of them.
Feeding a sequence in pieces of any sizes (zero frames included) through the same
`StreamState` therefore gives the output of feeding it at once, up to float rounding.

They replace, one for one and with the same parameters (so a non-causal model's weights
load into its causal twin), the layers of `model.py` and `blocks.py`:

* `CausalConv1d`: left padding only, instead of 'same' padding.
* `CausalDownsample`: latent frame n sees STFT frames up to the last of its own
  `stride` frames, never the next ones.
* `CausalUpsample`: a transposed convolution whose output frames depend on the current
  and the previous input frame only (the non-causal one also reads the next).
* `CausalGRN`: ConvNeXt v2's GRN pools each channel's energy over the whole sequence; here
  over a sliding window of the last `window` frames (the length of a training crop), which
  a stream can keep in constant memory.

Shapes: (B, C, T) tensors, except GRN's channels-last (B, T, C).

A stream pushed frame by frame gives each layer a handful of frames at a time, where
general convolution kernels are slow (about 0.2 ms a call); short pushes take
matrix-multiply paths instead, and the GRN keeps a running sum instead of re-summing its
window (scripts/streaming_latency.py measures the result).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import GRN, ConvNeXtBlock, ConvNeXtStack


class StreamState:
    """What the causal layers of one stream remember of it, one entry per layer.

    A fresh state means "nothing before this"; one model can serve any number of
    independent streams, each with its own state.
    """

    def __init__(self) -> None:
        self._memory: dict[int, Any] = {}

    def get(self, layer: nn.Module) -> Any:
        return self._memory.get(id(layer))

    def set(self, layer: nn.Module, value: Any) -> None:
        self._memory[id(layer)] = value


def _history(layer: nn.Module, x: torch.Tensor, state: StreamState | None, frames: int,
             dim: int = -1) -> torch.Tensor:
    """The stream's remembered frames followed by `x`, along `dim` (zeros if none yet)."""
    past = state.get(layer) if state is not None else None
    if past is None:
        shape = list(x.shape)
        shape[dim] = frames
        past = x.new_zeros(shape)
    return torch.cat([past.to(x.dtype), x], dim=dim)


def _empty(x: torch.Tensor, channels: int) -> torch.Tensor:
    return x.new_zeros(x.shape[0], channels, 0)


#: Pushes of at most this many output frames take the matrix-multiply paths.
SHORT = 32


def _short_conv(conv: nn.Conv1d, xx: torch.Tensor) -> torch.Tensor:
    """Stride-1, unpadded `conv(xx)` for a few output frames, as multiply-adds."""
    k = conv.kernel_size[0]
    n = xx.shape[-1] - k + 1
    weight = conv.weight
    if conv.groups == conv.in_channels == conv.out_channels:  # depthwise
        # (B, C, n, k) windows times the (C, 1, k) taps, summed (as `CausalConvNeXtBlock.stream`).
        y = (xx.unfold(-1, k, 1) * weight).sum(dim=-1)
        return y if conv.bias is None else y + conv.bias.unsqueeze(-1)
    windows = xx.unfold(-1, k, 1).transpose(1, 2).reshape(xx.shape[0], n, -1)  # (B, n, C*k)
    y = F.linear(windows, weight.reshape(weight.shape[0], -1), conv.bias)
    return y.transpose(1, 2)


class CausalConv1d(nn.Conv1d):
    """Stride-1 convolution over the current and the `kernel_size - 1` previous frames."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, groups: int = 1) -> None:
        super().__init__(c_in, c_out, kernel_size, groups=groups)

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        k = self.kernel_size[0]
        xx = _history(self, x, state, k - 1)
        if state is not None:
            state.set(self, xx[..., xx.shape[-1] - (k - 1):])
        if not x.shape[-1]:
            return _empty(x, self.out_channels)
        return _short_conv(self, xx) if x.shape[-1] <= SHORT else super().forward(xx)


class CausalDownsample(nn.Conv1d):
    """Strided convolution: output n sees input frames up to (n + 1) * stride - 1.

    Its `kernel_size` frames end at the last frame of group n (for kernel 7 and stride 8:
    frames 8n+1 .. 8n+7). A stream's frames that do not complete a group wait in the state.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int) -> None:
        super().__init__(c_in, c_out, kernel_size, stride=stride)

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        lead = max(k - s, 0)  # frames before a group that its output also sees
        xx = _history(self, x, state, lead)
        groups = (xx.shape[-1] - lead) // s
        if state is None and (xx.shape[-1] - lead) % s:
            raise ValueError(f"length {x.shape[-1]} is not a multiple of the stride {s}")
        if state is not None:
            state.set(self, xx[..., groups * s:])
        if not groups:
            return _empty(x, self.out_channels)
        return super().forward(xx[..., max(s - k, 0): lead + groups * s])


class CausalUpsample(nn.ConvTranspose1d):
    """Transposed convolution (kernel 2 * stride) emitting `stride` frames per input frame.

    Output frames [n * stride, (n + 1) * stride) depend on input frames n - 1 and n only.
    """

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__(c_in, c_out, 2 * stride, stride=stride)

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        s, n = self.stride[0], x.shape[-1]
        xx = _history(self, x, state, 1)
        if state is not None:
            state.set(self, xx[..., -1:])
        if not n:
            return _empty(x, self.out_channels)
        # Output frames [s*i, s*(i+1)) are taps [0, s) applied to input frame i plus taps
        # [s, 2s) applied to frame i - 1: one matrix product with all 2s taps of every
        # frame, (B, n + 1, C_in) @ (C_in, C_out * 2s), the weight used in place.
        w = self.weight  # (C_in, C_out, 2s)
        taps = (xx.transpose(1, 2) @ w.reshape(w.shape[0], -1)).view(
            xx.shape[0], n + 1, w.shape[1], 2 * s)
        y = taps[:, 1:, :, :s] + taps[:, :-1, :, s:]  # (B, n, C_out, s)
        if self.bias is not None:
            y = y + self.bias.unsqueeze(-1)
        return y.permute(0, 2, 1, 3).reshape(y.shape[0], y.shape[2], n * s)


class CausalGRN(GRN):
    """GRN whose per-channel energy is the sum over the last `window` frames only.

    Whole sequences: the window sums are differences of a float64 cumulative sum. Streams:
    the state is a ring of the last `window` frames' energies and their float64 sum, and a
    short push only adds its frames and subtracts those leaving the window.
    """

    def __init__(self, dim: int, window: int, eps: float = 1e-6) -> None:
        super().__init__(dim, eps)
        self.window = window

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        """x: (B, T, C) channels-last."""
        if not x.shape[1]:
            return x
        if state is not None and x.shape[1] <= min(SHORT, self.window):
            sums = self._push(x.square(), state)  # summed in float64 by the ring
        else:
            sums = self._window_sums(x.double().square(), state)
        norm = sums.clamp_min(0).sqrt().to(x.dtype)  # (B, T, C)
        scale = norm / (norm.mean(dim=-1, keepdim=True) + self.eps)
        return torch.addcmul(self.beta + x, self.gamma, x * scale)

    def _window_sums(self, energy: torch.Tensor, state: StreamState | None) -> torch.Tensor:
        """Sums of the last `window` energies at each frame, from a cumulative sum."""
        w = self.window
        ring = state.get(self) if state is not None else None
        past = ring.ordered() if ring is not None else energy.new_zeros(
            energy.shape[0], w, energy.shape[2])
        total = torch.cat([past, energy], dim=1).cumsum(dim=1)  # (B, w + T, C)
        if state is not None:
            state.set(self, _Ring(torch.cat([past, energy], dim=1)[:, -w:], total[:, -1:] -
                                  total[:, -w - 1:-w]))
        return total[:, w:] - total[:, :-w]

    def _push(self, energy: torch.Tensor, state: StreamState) -> torch.Tensor:
        ring = state.get(self)
        if ring is None:
            shape = (energy.shape[0], self.window, energy.shape[2])
            ring = _Ring(energy.new_zeros(shape, dtype=torch.float64),
                         energy.new_zeros((shape[0], 1, shape[2]), dtype=torch.float64))
            state.set(self, ring)
        return ring.push(energy)


class _Ring:
    """The last `window` frames of a stream (B, window, C), oldest at `start`, and their
    sum (B, 1, C)."""

    def __init__(self, frames: torch.Tensor, total: torch.Tensor, start: int = 0) -> None:
        self.frames, self.total, self.start = frames, total, start

    def ordered(self) -> torch.Tensor:
        return torch.roll(self.frames, -self.start, dims=1)

    def push(self, new: torch.Tensor) -> torch.Tensor:
        """Add T <= window frames; return the float64 window sums (B, T, C) ending at each."""
        window, n, start = self.frames.shape[1], new.shape[1], self.start
        if start + n <= window:  # the usual case: one slice, no index arithmetic
            slots: slice | torch.Tensor = slice(start, start + n)
        else:
            slots = (start + torch.arange(n, device=new.device)) % window
        sums = (new - self.frames[:, slots]).cumsum(dim=1).add_(self.total)  # float64
        self.frames[:, slots] = new if isinstance(slots, slice) else new.to(self.frames.dtype)
        self.total = sums[:, -1:]
        self.start = (start + n) % window
        return sums


class CausalConvNeXtBlock(ConvNeXtBlock):
    """ConvNeXt v2 block with a causal depthwise convolution and the causal GRN."""

    def __init__(self, dim: int, hidden_dim: int, kernel_size: int, window: int) -> None:
        super().__init__(dim, hidden_dim, kernel_size)
        self.dwconv = CausalConv1d(dim, dim, kernel_size, groups=dim)
        self.grn = CausalGRN(hidden_dim, window)

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        y = self.dwconv(x, state).transpose(1, 2)  # (B, T, C): point-wise layers
        y = self.pwconv2(self.grn(self.act(self.pwconv1(self.norm(y))), state))
        return x + y.transpose(1, 2)

    def stream(self, x: torch.Tensor, state: StreamState) -> torch.Tensor:
        """The next frames of a stream, channels-last (B, T, C) in and out: no transposes,
        the depthwise convolution as a product with the windows of the remembered frames."""
        k = self.dwconv.kernel_size[0]
        xx = _history(self.dwconv, x, state, k - 1, dim=1)  # (B, k - 1 + T, C)
        state.set(self.dwconv, xx[:, xx.shape[1] - (k - 1):])
        if not x.shape[1]:
            return x
        # (B, T, C, k) windows times the (C, k) taps, summed: the depthwise convolution.
        y = (xx.unfold(1, k, 1) * self.dwconv.weight[:, 0]).sum(dim=-1)
        y = self.norm(y + self.dwconv.bias)
        return x + self.pwconv2(self.grn(self.act(self.pwconv1(y)), state))


class CausalConvNeXtStack(ConvNeXtStack):
    """LayerNorm, causal ConvNeXt v2 blocks, LayerNorm (LayerNorm is per frame)."""

    def __init__(self, dim: int, hidden_dim: int, n_blocks: int, kernel_size: int,
                 window: int) -> None:
        super().__init__(dim, hidden_dim, n_blocks, kernel_size)
        self.blocks = nn.Sequential(
            *(CausalConvNeXtBlock(dim, hidden_dim, kernel_size, window) for _ in range(n_blocks))
        )

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        if state is None:
            x = self.norm_in(x)
            for block in self.blocks:
                x = block(x)
            return self.norm_out(x)
        # A stream stays channels-last through the whole stack (see `stream`).
        x = nn.LayerNorm.forward(self.norm_in, x.transpose(1, 2))
        for block in self.blocks:
            x = block.stream(x, state)
        return nn.LayerNorm.forward(self.norm_out, x).transpose(1, 2)
