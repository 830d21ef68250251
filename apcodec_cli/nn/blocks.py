"""Building blocks shared by the encoder and decoder: GRN, ConvNeXt v2 block and stack.

Shapes: modules take and return (B, C, T) tensors unless a docstring says otherwise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of a (B, C, T) tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # LayerNorm normalises the last axis, so move channels there and back.
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


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
        scale = norm / (norm.mean(dim=-1, keepdim=True) + self.eps)
        # beta + x + gamma * (x * scale), folded into one pass over the (B, T, C) tensor:
        # the per-channel factor 1 + gamma * scale is only (B, 1, C). Same values up to
        # float rounding, a third of the memory traffic (docs/speed.md).
        return torch.addcmul(self.beta, x, torch.addcmul(torch.ones_like(scale), self.gamma, scale))


class ConvNeXtBlock(nn.Module):
    """ConvNeXt v2 block: depthwise conv, LayerNorm, Linear, GELU, GRN, Linear, residual."""

    def __init__(self, dim: int, hidden_dim: int, kernel_size: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pwconv1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.grn = GRN(hidden_dim)
        self.pwconv2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _depthwise(self.dwconv, x).transpose(1, 2)  # (B, T, C): point-wise layers act on C
        y = self.pwconv2(self.grn(self.act(self.pwconv1(self.norm(y)))))
        return x + y.transpose(1, 2)


def _depthwise(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """`conv(x)` for a depthwise Conv1d, keeping the memory layout of x.

    Inside a stack, x is a (B, C, T) view of a channels-last (B, T, C) tensor (LayerNorm
    leaves it so). Conv1d would copy it to channels-first and the LayerNorm after it would
    copy it back; as a (B, C, 1, T) channels-last 2-D convolution, oneDNN reads and writes
    that layout directly (about 5x faster for conv plus LayerNorm, docs/speed.md).
    """
    if conv.padding_mode != "zeros" or not isinstance(conv.padding, tuple):
        return conv(x)
    weight = conv.weight.unsqueeze(2)  # (C, 1, 1, K)
    if x.dim() == 3 and x.stride(1) == 1 and x.shape[1] > 1:
        weight = weight.contiguous(memory_format=torch.channels_last)
    y = F.conv2d(x.unsqueeze(2), weight, conv.bias, (1, conv.stride[0]), (0, conv.padding[0]),
                 (1, conv.dilation[0]), conv.groups)
    return y.squeeze(2)


class ConvNeXtStack(nn.Module):
    """LayerNorm, `n_blocks` ConvNeXt v2 blocks, LayerNorm: the body of every branch."""

    def __init__(self, dim: int, hidden_dim: int, n_blocks: int, kernel_size: int) -> None:
        super().__init__()
        self.norm_in = ChannelLayerNorm(dim)
        self.blocks = nn.Sequential(
            *(ConvNeXtBlock(dim, hidden_dim, kernel_size) for _ in range(n_blocks))
        )
        self.norm_out = ChannelLayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm_out(self.blocks(self.norm_in(x)))
