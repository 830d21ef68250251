"""Causal layers of the streamable model (APCodec-S), on whole sequences.

Every layer here looks only at the present frame and the past (zeros before the start).
They stand, one for one and with the same parameters (so a non-causal model's weights
load into its causal twin), where the full model has centred layers:

* `CausalConv1d`: left padding only, instead of 'same' padding.
* `CausalDownsample`: latent frame n sees STFT frames up to the last of its own
  `stride` frames, never the next ones.
* `CausalUpsample`: a transposed convolution whose output frames depend on the current
  and the previous input frame only (the non-causal one also reads the next).

The causal ConvNeXt v2 block and its GRN over a sliding window are `blocks.ConvNeXtBlock`
and `grn.CausalGRN`. Each layer says how many past frames it reads (`history`, `lead`,
`skip`; `overlap_taps`): the packed stream step (`engine/streamnet.py`), a few frames at a
time, remembers exactly those (docs/architecture.md, "Causal frames and taps").

Shapes: (B, C, T) tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CausalConv1d(nn.Conv1d):
    """Stride-1 convolution over the current and the `kernel_size - 1` previous frames."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, groups: int = 1) -> None:
        super().__init__(c_in, c_out, kernel_size, groups=groups)

    @property
    def history(self) -> int:
        """Past frames each output reads: zeros before the start, remembered in a stream."""
        return self.kernel_size[0] - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.history, 0)))


class CausalDownsample(nn.Conv1d):
    """Strided convolution: output n sees input frames up to (n + 1) * stride - 1.

    Its `kernel_size` frames end at the last frame of group n (for kernel 7 and stride 8:
    frames 8n+1 .. 8n+7).
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int) -> None:
        super().__init__(c_in, c_out, kernel_size, stride=stride)

    @property
    def lead(self) -> int:
        """Frames before its group that an output also reads (kernel > stride)."""
        return max(self.kernel_size[0] - self.stride[0], 0)

    @property
    def skip(self) -> int:
        """Frames at the start of each group that no output reads (kernel < stride)."""
        return max(self.stride[0] - self.kernel_size[0], 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride[0]
        if x.shape[-1] % s:
            raise ValueError(f"length {x.shape[-1]} is not a multiple of the stride {s}")
        # Zeros for the frames before the first group that its output also sees.
        return super().forward(F.pad(x, (self.lead, 0))[..., self.skip:])


def overlap_taps(taps: torch.Tensor, stride: int, dim: int) -> torch.Tensor:
    """Output frames of a causal transposed convolution (kernel 2 * stride) from its taps.

    Args:
        taps: (B, n + 1, ...) the products of input frames -1 .. n - 1 (frame -1: zeros,
            or the one a stream remembers) with each of the 2 * stride taps, along `dim`.
        stride: Output frames per input frame.
        dim: The taps' axis (negative: counted from the end).

    Returns:
        (B, n, ...) with `stride` frames along `dim`: output frames [s*i, s*(i+1)) are
        taps [0, s) applied to input frame i plus taps [s, 2s) applied to frame i - 1.
    """
    return taps[:, 1:].narrow(dim, 0, stride) + taps[:, :-1].narrow(dim, stride, stride)


class CausalUpsample(nn.ConvTranspose1d):
    """Transposed convolution (kernel 2 * stride) emitting `stride` frames per input frame.

    Output frames [n * stride, (n + 1) * stride) depend on input frames n - 1 and n only.
    """

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__(c_in, c_out, 2 * stride, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, n = self.stride[0], x.shape[-1]
        xx = F.pad(x, (1, 0))
        # All 2s taps of every frame in one matrix product, (B, n + 1, C_in) @
        # (C_in, C_out * 2s), the weight used in place.
        w = self.weight  # (C_in, C_out, 2s)
        taps = (xx.transpose(1, 2) @ w.reshape(w.shape[0], -1)).view(
            xx.shape[0], n + 1, w.shape[1], 2 * s)
        y = overlap_taps(taps, s, dim=-1)  # (B, n, C_out, s)
        if self.bias is not None:
            y = y + self.bias.unsqueeze(-1)
        return y.permute(0, 2, 1, 3).reshape(y.shape[0], y.shape[2], n * s)
