"""Global response normalisation (ConvNeXt v2): over the whole sequence, or causally over a
sliding window of the last frames.

Both take and return channels-last (B, T, C) tensors. `grn_scale` is the response they share
with the packed stream step (`engine/streamnet.py`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ENERGY_FLOOR = 1e-20  # of the windowed energy under the GRN's square root (see CausalGRN)


def grn_scale(norm: torch.Tensor, eps: float) -> torch.Tensor:
    """GRN's response (..., C): each channel's norm divided by the mean norm over the
    channels (plus `eps`)."""
    return norm / (norm.mean(dim=-1, keepdim=True) + eps)


class GRN(nn.Module):
    """Global response normalisation (ConvNeXt v2) over the time axis.

    Each channel's L2 norm over all frames is divided by the mean norm across channels; the
    result rescales the input. Every output frame therefore depends on the whole sequence,
    which is why long signals are coded in overlapping chunks (see `chunked.py`).
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, C) channels-last."""
        norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)  # (B, 1, C)
        scale = grn_scale(norm, self.eps)
        # beta + x + gamma * (x * scale), folded into one pass over the (B, T, C) tensor:
        # the per-channel factor 1 + gamma * scale is only (B, 1, C). Same values up to
        # float rounding, a third of the memory traffic (docs/speed.md).
        return torch.addcmul(self.beta, x, torch.addcmul(torch.ones_like(scale), self.gamma, scale))


class CausalGRN(GRN):
    """GRN whose per-channel energy is the sum over the last `window` frames only (sums
    as differences of a float64 cumulative sum), so that a stream can keep it in constant
    memory: the streamable model's GRN."""

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
        scale = grn_scale(norm.to(x.dtype), self.eps)  # (B, T, C)
        return torch.addcmul(self.beta + x, self.gamma, x * scale)
