"""Re-seeding of unused codebook entries during training.

With L2-normalised look-up, a freshly initialised quantizer collapses within a few dozen
steps: every frame picks the same entry of each codebook and the decoder learns only the
average spectrum (measured on the small preset: one code per stage after 50 steps, the
amplitude loss stuck at the variance of the data). The published recipe does not say how
it avoids this; we use the common remedy of EnCodec and SoundStream: codebooks start from
randomly chosen encoder outputs, and every `every` steps each entry that no frame chose
since the last check is replaced by a random current encoder output.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from ..nn.quantizer import QuantizerOutput, ResidualVQ
from .distributed import Process


class CodebookReviver:
    """Counts codebook usage and re-seeds dead entries from the current batch.

    Args:
        quantizer: The residual VQ being trained (its codebooks are changed in place).
        every: Steps between checks; 0 disables re-seeding (and the initial seeding).
        process: This process's place in the run (counts are summed over processes and
            the main process's choice of replacements is broadcast).
    """

    def __init__(self, quantizer: ResidualVQ, every: int, process: Process) -> None:
        self.quantizer, self.every, self.process = quantizer, every, process
        n_stages, size = len(quantizer.stages), quantizer.stages[0].codebook.num_embeddings
        self.counts = torch.zeros(n_stages, size, device=process.device)
        self.seed_at_start = True  # False for a warm start: keep the loaded codebooks

    @torch.no_grad()
    def update(self, quantized: QuantizerOutput, step: int) -> int:
        """Record the codes of step `step`; re-seed when due. Returns entries re-seeded."""
        if not self.every:
            return 0
        for i, codes in enumerate(quantized.codes.transpose(0, 1)):
            self.counts[i] += torch.bincount(codes.flatten(), minlength=self.counts.shape[1])
        if step % self.every or (step == 0 and not self.seed_at_start):
            # A warm start skips the check of step 0: one batch's counts would call most
            # of the loaded entries dead (batch 32: 800 codes for 1024 entries per stage).
            return 0
        if self.process.distributed:
            dist.all_reduce(self.counts)
        # At step 0 every entry is re-seeded: a data-dependent initialisation.
        dead = torch.ones_like(self.counts, dtype=torch.bool) if step == 0 else self.counts == 0
        revived = 0
        for i, stage in enumerate(self.quantizer.stages):
            revived += self._reseed(stage.codebook.weight, quantized.projected[i], dead[i])
        self.counts.zero_()
        return revived

    def _reseed(self, weight: torch.Tensor, projected: torch.Tensor, dead: torch.Tensor) -> int:
        """Replace rows `dead` of `weight` (K, D) with random rows of projected (B, D, T)."""
        n_dead = int(dead.sum())
        if n_dead:
            pool = projected.transpose(1, 2).reshape(-1, projected.shape[1])  # (B*T, D)
            pick = torch.randint(0, pool.shape[0], (n_dead,), device=pool.device)
            weight[dead] = pool[pick].to(weight.dtype)
            if self.process.distributed:
                dist.broadcast(weight, src=0)  # every replica keeps rank 0's codebook
        return n_dead

    @torch.no_grad()
    def gather(self) -> None:
        """Move the counts of every process into rank 0's, which the saved state holds;
        the others start again from zero, so the next check's all-reduce still sums the
        same counts. Every process must call this together, before rank 0 saves."""
        if self.process.distributed:
            dist.all_reduce(self.counts)
            if not self.process.main:
                self.counts.zero_()

    def state_dict(self) -> dict[str, Any]:
        """The usage counts since the last check (all processes' after `gather`)."""
        return {"counts": self.counts}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Rank 0 takes the saved counts (every process's, see `gather`); others start at 0."""
        if self.process.main:
            self.counts.copy_(state["counts"])
        else:
            self.counts.zero_()
