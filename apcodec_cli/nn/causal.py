"""Causal layers of the streamable model (APCodec-S), on whole sequences.

Every layer here looks only at the present frame and the past (zeros before the start).
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

Training and whole-signal passes use these modules; a stream, a few frames at a time, runs
the same functions through `streamnet.py`, which packs their weights for that.

Shapes: (B, C, T) tensors, except GRN's channels-last (B, T, C).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import GRN, ConvNeXtBlock, ConvNeXtStack

ENERGY_FLOOR = 1e-20  # of the windowed energy under the GRN's square root (see CausalGRN)


class CausalConv1d(nn.Conv1d):
    """Stride-1 convolution over the current and the `kernel_size - 1` previous frames."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, groups: int = 1) -> None:
        super().__init__(c_in, c_out, kernel_size, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.kernel_size[0] - 1, 0)))


class CausalDownsample(nn.Conv1d):
    """Strided convolution: output n sees input frames up to (n + 1) * stride - 1.

    Its `kernel_size` frames end at the last frame of group n (for kernel 7 and stride 8:
    frames 8n+1 .. 8n+7).
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int) -> None:
        super().__init__(c_in, c_out, kernel_size, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        if x.shape[-1] % s:
            raise ValueError(f"length {x.shape[-1]} is not a multiple of the stride {s}")
        # Zeros for the frames before the first group that its output also sees; the first
        # s - k frames of each group are seen by no output.
        return super().forward(F.pad(x, (max(k - s, 0), 0))[..., max(s - k, 0):])


class CausalUpsample(nn.ConvTranspose1d):
    """Transposed convolution (kernel 2 * stride) emitting `stride` frames per input frame.

    Output frames [n * stride, (n + 1) * stride) depend on input frames n - 1 and n only.
    """

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__(c_in, c_out, 2 * stride, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, n = self.stride[0], x.shape[-1]
        xx = F.pad(x, (1, 0))
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
    """GRN whose per-channel energy is the sum over the last `window` frames only (sums
    as differences of a float64 cumulative sum)."""

    def __init__(self, dim: int, window: int, eps: float = 1e-6) -> None:
        super().__init__(dim, eps)
        self.window = window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, C) channels-last."""
        energy = F.pad(x.double().square(), (0, 0, self.window, 0))  # zeros before the start
        total = energy.cumsum(dim=1)
        # The floor keeps sqrt's gradient finite where a channel is exactly zero over the
        # window (a dead channel after GELU): at 0 it is infinite, and infinity times the
        # zero input's gradient is NaN, in every parameter (seen 2026-12-04, distilling
        # from weights whose decoder had such a channel). Forward: unchanged to ~1e-10.
        norm = (total[:, self.window:] - total[:, :-self.window]).clamp_min(ENERGY_FLOOR).sqrt()
        norm = norm.to(x.dtype)  # (B, T, C)
        scale = norm / (norm.mean(dim=-1, keepdim=True) + self.eps)
        return torch.addcmul(self.beta + x, self.gamma, x * scale)


class CausalConvNeXtBlock(ConvNeXtBlock):
    """ConvNeXt v2 block with a causal depthwise convolution and the causal GRN."""

    def __init__(self, dim: int, hidden_dim: int, kernel_size: int, window: int) -> None:
        super().__init__(dim, hidden_dim, kernel_size)
        self.dwconv = CausalConv1d(dim, dim, kernel_size, groups=dim)
        self.grn = CausalGRN(hidden_dim, window)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).transpose(1, 2)  # (B, T, C): point-wise layers
        y = self.pwconv2(self.grn(self.act(self.pwconv1(self.norm(y)))))
        return x + y.transpose(1, 2)


class CausalConvNeXtStack(ConvNeXtStack):
    """LayerNorm, causal ConvNeXt v2 blocks, LayerNorm (LayerNorm is per frame)."""

    def __init__(self, dim: int, hidden_dim: int, n_blocks: int, kernel_size: int,
                 window: int) -> None:
        super().__init__(dim, hidden_dim, n_blocks, kernel_size)
        self.blocks = nn.Sequential(
            *(CausalConvNeXtBlock(dim, hidden_dim, kernel_size, window) for _ in range(n_blocks))
        )
