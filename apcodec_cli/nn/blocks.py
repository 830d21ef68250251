"""The ConvNeXt v2 block, defined once, and the stack both branches use.

`convnext_v2` is the block: every form of it runs that function with its own parts (the
full model's and the streamable model's modules here; the packed stream step of
`engine/streamnet.py`). A block is built whole (centred depthwise convolution, GRN over the
whole sequence) or causal (`window`: causal convolution, GRN over the last `window` frames).

Shapes: modules take and return (B, C, T) tensors unless a docstring says otherwise.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .causal import CausalConv1d
from .grn import GRN, CausalGRN

Tensor = torch.Tensor
Layer = Callable[[Tensor], Tensor]


def convnext_v2(x: Tensor, depthwise: Layer, expand: Layer, grn: Layer, project: Layer
                ) -> Tensor:
    """One ConvNeXt v2 block: x + project(grn(gelu(expand(depthwise(x))))).

    Args:
        x: The block's input, in the layout of its form.
        depthwise: The depthwise convolution over time; returns channels last.
        expand: LayerNorm and the point-wise Linear to the hidden width.
        grn: Global response normalisation (see `grn.py`).
        project: The point-wise Linear back to the block's width, in x's layout.
    """
    return x + project(grn(F.gelu(expand(depthwise(x)))))


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of a (B, C, T) tensor."""

    def forward(self, x: Tensor) -> Tensor:
        # LayerNorm normalises the last axis, so move channels there and back.
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class DepthwiseConv1d(nn.Conv1d):
    """The full model's depthwise convolution ('same' padding), keeping the memory layout
    of its input.

    Inside a stack, x is a (B, C, T) view of a channels-last (B, T, C) tensor (LayerNorm
    leaves it so). Conv1d would copy it to channels-first and the LayerNorm after it would
    copy it back; as a (B, C, 1, T) channels-last 2-D convolution, oneDNN reads and writes
    that layout directly (about 5x faster for conv plus LayerNorm, docs/speed.md).
    """

    def __init__(self, dim: int, kernel_size: int) -> None:
        super().__init__(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)

    def forward(self, x: Tensor) -> Tensor:
        if self.padding_mode != "zeros" or not isinstance(self.padding, tuple):
            return super().forward(x)
        weight = self.weight.unsqueeze(2)  # (C, 1, 1, K)
        if x.dim() == 3 and x.stride(1) == 1 and x.shape[1] > 1:
            weight = weight.contiguous(memory_format=torch.channels_last)
        y = F.conv2d(x.unsqueeze(2), weight, self.bias, (1, self.stride[0]),
                     (0, self.padding[0]), (1, self.dilation[0]), self.groups)
        return y.squeeze(2)


class ConvNeXtBlock(nn.Module):
    """ConvNeXt v2 block: depthwise conv, LayerNorm, Linear, GELU, GRN, Linear, residual.

    With `window` it is causal: the depthwise convolution reads the present and past frames
    only and the GRN pools the last `window` frames (`CausalGRN`). The parameters are the
    same either way, so a full model's weights load into its causal twin.
    """

    def __init__(self, dim: int, hidden_dim: int, kernel_size: int,
                 window: int | None = None) -> None:
        super().__init__()
        self.dwconv = DepthwiseConv1d(dim, kernel_size) if window is None else \
            CausalConv1d(dim, dim, kernel_size, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pwconv1 = nn.Linear(dim, hidden_dim)
        self.grn = GRN(hidden_dim) if window is None else CausalGRN(hidden_dim, window)
        self.pwconv2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        # The point-wise layers act on channels: they run on (B, T, C).
        return convnext_v2(x, lambda x: self.dwconv(x).transpose(1, 2),
                           lambda y: self.pwconv1(self.norm(y)), self.grn,
                           lambda h: self.pwconv2(h).transpose(1, 2))


class ConvNeXtStack(nn.Module):
    """LayerNorm, `n_blocks` ConvNeXt v2 blocks, LayerNorm: the body of every branch
    (causal with `window`, see `ConvNeXtBlock`; LayerNorm is per frame either way)."""

    def __init__(self, dim: int, hidden_dim: int, n_blocks: int, kernel_size: int,
                 window: int | None = None) -> None:
        super().__init__()
        self.norm_in = ChannelLayerNorm(dim)
        self.blocks = nn.Sequential(
            *(ConvNeXtBlock(dim, hidden_dim, kernel_size, window) for _ in range(n_blocks))
        )
        self.norm_out = ChannelLayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm_out(self.blocks(self.norm_in(x)))
