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
"""

from __future__ import annotations

from typing import Any

import torch
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


class CausalConv1d(nn.Conv1d):
    """Stride-1 convolution over the current and the `kernel_size - 1` previous frames."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, groups: int = 1) -> None:
        super().__init__(c_in, c_out, kernel_size, groups=groups)

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        k = self.kernel_size[0]
        xx = _history(self, x, state, k - 1)
        if state is not None:
            state.set(self, xx[..., xx.shape[-1] - (k - 1):])
        return super().forward(xx) if x.shape[-1] else _empty(x, self.out_channels)


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
        # Output s + j of the convolution over [previous frame, x] is frame j of x's output;
        # the first s belong to the previous frame, the last s wait for the next one.
        return super().forward(xx)[..., s: s + n * s]


class CausalGRN(GRN):
    """GRN whose per-channel energy is the sum over the last `window` frames only.

    The sums are differences of a float64 running sum over the remembered window and the
    new frames, so they stay exact for streams of any length.
    """

    def __init__(self, dim: int, window: int, eps: float = 1e-6) -> None:
        super().__init__(dim, eps)
        self.window = window

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        """x: (B, T, C) channels-last."""
        w = self.window
        energy = _history(self, x.double().square(), state, w, dim=1)  # (B, w + T, C)
        if state is not None:
            state.set(self, energy[:, energy.shape[1] - w:])
        total = energy.cumsum(dim=1)
        norm = (total[:, w:] - total[:, :-w]).clamp_min(0).sqrt().to(x.dtype)  # (B, T, C)
        scale = norm / (norm.mean(dim=-1, keepdim=True) + self.eps)
        return torch.addcmul(self.beta + x, self.gamma, x * scale)


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


class CausalConvNeXtStack(ConvNeXtStack):
    """LayerNorm, causal ConvNeXt v2 blocks, LayerNorm (LayerNorm is per frame)."""

    def __init__(self, dim: int, hidden_dim: int, n_blocks: int, kernel_size: int,
                 window: int) -> None:
        super().__init__(dim, hidden_dim, n_blocks, kernel_size)
        self.blocks = nn.Sequential(
            *(CausalConvNeXtBlock(dim, hidden_dim, kernel_size, window) for _ in range(n_blocks))
        )

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        x = self.norm_in(x)
        for block in self.blocks:
            x = block(x, state)
        return self.norm_out(x)
