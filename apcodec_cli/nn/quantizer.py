"""Residual vector quantizer with factorised, L2-normalised codebooks.

Each stage projects the residual to a small code space (1x1 conv), picks the codebook entry
with the highest cosine similarity, and projects that entry back (1x1 conv). Gradients pass
the look-up straight through. Shapes: latents (B, latent_dim, T); codes (B, n_codebooks, T).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn


@dataclasses.dataclass
class QuantizerOutput:
    """Result of a training forward pass.

    Attributes:
        latent: (B, latent_dim, T) quantized latent (straight-through gradient).
        codes: (B, n_codebooks, T) integer indices.
        projected: (n_codebooks, B, codebook_dim, T) what each stage looked up, detached
            (training uses it to re-seed unused codebook entries).
        codebook_loss: Pulls codebook entries towards the encoder outputs.
        commitment_loss: Pulls encoder outputs towards their codebook entries.
    """

    latent: torch.Tensor
    codes: torch.Tensor
    projected: torch.Tensor
    codebook_loss: torch.Tensor
    commitment_loss: torch.Tensor


def unit_entries(codebook: nn.Embedding) -> torch.Tensor:
    """A codebook's entries scaled to unit length, as the columns of a (D, K) matrix."""
    return F.normalize(codebook.weight, dim=-1).t()


def nearest(queries: torch.Tensor, entries: torch.Tensor) -> torch.Tensor:
    """The nearest-neighbour search of every stage, in every form: the index of the entry
    closest in angle to each query.

    Args:
        queries: (..., D) points in code space, any length.
        entries: (D, K) unit-length entries (`unit_entries`).

    Returns:
        (...) int64 indices: the highest cosine similarity.
    """
    return (F.normalize(queries, dim=-1) @ entries).argmax(dim=-1)


class VectorQuantizer(nn.Module):
    """One factorised VQ stage."""

    def __init__(self, latent_dim: int, codebook_size: int, codebook_dim: int) -> None:
        super().__init__()
        self.in_proj = nn.Conv1d(latent_dim, codebook_dim, 1)
        self.out_proj = nn.Conv1d(codebook_dim, latent_dim, 1)
        self.codebook = nn.Embedding(codebook_size, codebook_dim)

    def project(self, residual: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim, T) -> (B, codebook_dim, T) point in code space."""
        return self.in_proj(residual)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Indices (B, T) of the entries closest in angle to z (B, codebook_dim, T)."""
        return nearest(z.transpose(1, 2), unit_entries(self.codebook))  # a query per frame

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codebook entries (B, codebook_dim, T) of indices (B, T)."""
        return self.codebook(codes).transpose(1, 2)


class ResidualVQ(nn.Module):
    """`n_codebooks` VQ stages, each coding what the previous ones left."""

    def __init__(self, latent_dim: int, n_codebooks: int, codebook_size: int, codebook_dim: int) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            VectorQuantizer(latent_dim, codebook_size, codebook_dim) for _ in range(n_codebooks)
        )

    def forward(self, latent: torch.Tensor) -> QuantizerOutput:
        """Quantize (B, latent_dim, T) with losses, for training."""
        residual = latent
        total = torch.zeros_like(latent)
        codes, projected, cb_losses, commit_losses = [], [], [], []
        for stage in self.stages:
            z = stage.project(residual)
            stage_codes = stage.nearest(z)
            z_q = stage.lookup(stage_codes)
            cb_losses.append(F.mse_loss(z_q, z.detach()))
            commit_losses.append(F.mse_loss(z, z_q.detach()))
            out = stage.out_proj(z + (z_q - z).detach())  # straight-through estimator
            residual = residual - out
            total = total + out
            codes.append(stage_codes)
            projected.append(z.detach())
        return QuantizerOutput(
            latent=total,
            codes=torch.stack(codes, dim=1),
            projected=torch.stack(projected),
            codebook_loss=torch.stack(cb_losses).sum(),
            commitment_loss=torch.stack(commit_losses).sum(),
        )

    def encode(self, latent: torch.Tensor) -> torch.Tensor:
        """Codes (B, n_codebooks, T) of a latent (B, latent_dim, T).

        Always in float32, under autocast too. With the encoder in bf16, 98 % of the codes
        stay those of a float32 pass; with this search in bf16 too (3 significant digits
        for every similarity), only 76 % did (docs/speed.md).
        """
        with torch.autocast(latent.device.type, enabled=False):
            residual = latent.float()
            codes = []
            for stage in self.stages:
                stage_codes = stage.nearest(stage.project(residual))
                residual = residual - stage.out_proj(stage.lookup(stage_codes))
                codes.append(stage_codes)
            return torch.stack(codes, dim=1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Latent (B, latent_dim, T) of codes (B, n_codebooks, T), in float32."""
        if codes.shape[1] != len(self.stages):
            raise ValueError(f"expected {len(self.stages)} codebooks, got {codes.shape[1]}")
        with torch.autocast(codes.device.type, enabled=False):
            return sum(
                stage.out_proj(stage.lookup(codes[:, i])) for i, stage in enumerate(self.stages)
            )
