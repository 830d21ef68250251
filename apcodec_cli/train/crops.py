"""Random training crops with gain augmentation, drawn the same way from memory or disk.

The crops of a step depend only on (seed, rank, step): a `CropPlan` picks, for every batch
slot, a few candidate (clip, offset) pairs (clips chosen in proportion to their length) and
a gain. The first candidate louder than the silence threshold is used (the first one when
all are silent). Two sources carry a plan out and give identical batches:

* `ResidentCrops` holds the whole training set as one int16 tensor (on the GPU, say) and
  gathers the crops there: no host work per step beyond drawing the small plan.
* `StreamCrops` reads the candidates from the files in DataLoader worker processes, for
  data larger than memory.

Because a batch is a function of the step, a resumed run sees exactly the batches the
uninterrupted run would have seen.
"""

from __future__ import annotations

import dataclasses
import signal
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..format.audio import to_int16
from .augment import AUG_DRAWS, augment
from .config import SEED_BITS, Augment
from .data import Clip, read_clip, read_window

CANDIDATES = 4  # candidate crops per slot, to skip near-silent ones
PEAK = 0.99  # gain never pushes a crop's peak above this


@dataclasses.dataclass
class CropPlan:
    """Candidates (B, CANDIDATES) of clip indices and offsets, gains (B,) in dB, and the
    augmentations' uniforms (B, AUG_DRAWS), None when the run augments nothing."""

    clips: torch.Tensor
    offsets: torch.Tensor
    gain_db: torch.Tensor
    aug: torch.Tensor | None = None


#: Bits of the crop generator's seed given to the step and to the rank, below the run's
#: SEED_BITS: 63 in all, a seed valid as a signed 64-bit integer too.
STEP_BITS, RANK_BITS = 32, 8


def crop_seed(seed: int, rank: int, step: int) -> int:
    """The seed of the crops of (seed, rank, step), distinct for every triple in range."""
    for name, value, bits in (("seed", seed, SEED_BITS), ("rank", rank, RANK_BITS),
                              ("step", step, STEP_BITS)):
        if not 0 <= value < 1 << bits:
            raise ValueError(f"crop seed: {name} {value} is not in [0, 2**{bits})")
    return (seed << (STEP_BITS + RANK_BITS)) + (rank << STEP_BITS) + step


class CropPlanner:
    """Draws the crop plan of any step, deterministically."""

    def __init__(self, lengths: Sequence[int], segment: int, batch: int,
                 gain_db: tuple[float, float], seed: int, rank: int = 0,
                 weights: Sequence[float] | None = None, augment: Augment = Augment()
                 ) -> None:
        """`weights` (one per clip) replace the clips' lengths as drawing weights."""
        self.lengths = torch.tensor(lengths, dtype=torch.int64)
        self.weights = (self.lengths.double() if weights is None
                        else torch.tensor(weights, dtype=torch.float64))
        self.segment, self.batch, self.gain_db = segment, batch, gain_db
        self.seed, self.rank, self.augment = seed, rank, augment
        crop_seed(seed, rank, 0)  # out of range: fail now, not at the first step

    def plan(self, step: int) -> CropPlan:
        """The plan of `step` (CPU tensors)."""
        g = torch.Generator().manual_seed(crop_seed(self.seed, self.rank, step))
        clips = torch.multinomial(self.weights, self.batch * CANDIDATES,
                                  replacement=True, generator=g).view(self.batch, CANDIDATES)
        room = (self.lengths[clips] - self.segment).clamp(min=0) + 1
        offsets = (torch.rand(clips.shape, generator=g, dtype=torch.float64) * room).long()
        low, high = self.gain_db
        gain = low + (high - low) * torch.rand(self.batch, generator=g)
        aug = (torch.rand(self.batch, AUG_DRAWS, generator=g) if self.augment.active
               else None)  # drawn last: runs without augmentation keep their crops
        return CropPlan(clips, offsets, gain, aug)


def share_weights(clips: Sequence[Clip], speech_share: float) -> list[float] | None:
    """Drawing weights that give speech clips `speech_share` of the crops (within each
    group in proportion to length); None (plain length weights) for a share of 0 or when
    the clips are all speech or all something else."""
    speech = [clip.category == "speech" for clip in clips]
    if not speech_share or all(speech) or not any(speech):
        return None
    total = {True: sum(c.frames for c, s in zip(clips, speech) if s),
             False: sum(c.frames for c, s in zip(clips, speech) if not s)}
    share = {True: speech_share, False: 1.0 - speech_share}
    return [c.frames * share[s] / total[s] for c, s in zip(clips, speech)]


def finish(candidates: torch.Tensor, plan: CropPlan, silence_db: float,
           augmentations: Augment) -> torch.Tensor:
    """Pick the first non-silent candidate of each slot, augment it and apply its gain.

    Args:
        candidates: (B, CANDIDATES, S) float32 crops.
        plan: The plan they were read by (gains in dB, augmentation draws).

    Returns:
        (B, 1, S) training batch.
    """
    rms = candidates.square().mean(-1).clamp(min=1e-12).sqrt()
    loud = (20 * torch.log10(rms) >= silence_db).float()
    pick = loud.argmax(dim=1)  # first loud candidate, or 0 when none is
    x = candidates[torch.arange(candidates.shape[0], device=candidates.device), pick]
    if plan.aug is not None:
        x = augment(x, plan.aug.to(x.device), augmentations)
    gain = torch.pow(10.0, plan.gain_db.to(x) / 20)
    gain = torch.minimum(gain, PEAK / x.abs().amax(-1).clamp(min=1e-9))
    return (x * gain[:, None]).unsqueeze(1)


class ResidentCrops:
    """The training set as one int16 tensor on `device`; crops gathered there."""

    def __init__(self, clips: Sequence[Clip], planner: CropPlanner, silence_db: float,
                 device: torch.device, threads: int = 2) -> None:
        lengths = torch.tensor([c.frames for c in clips], dtype=torch.int64)
        starts = torch.cumsum(lengths, 0) - lengths
        audio = np.empty(int(lengths.sum()), np.int16)  # filled in place: no float copy

        def load(i: int) -> None:
            x, _ = to_int16(read_clip(clips[i]))
            audio[int(starts[i]):int(starts[i]) + x.size] = x

        with ThreadPoolExecutor(threads) as pool:  # decoding releases the GIL
            list(pool.map(load, range(len(clips))))
        self.audio = torch.from_numpy(audio).to(device)
        self.starts, self.lengths = starts.to(device), lengths.to(device)
        self.planner, self.silence_db, self.device = planner, silence_db, device

    def batch(self, step: int) -> torch.Tensor:
        """(B, 1, segment) crops of `step`, on the device."""
        plan = self.planner.plan(step)
        clips = plan.clips.to(self.device, non_blocking=True)
        offsets = plan.offsets.to(self.device, non_blocking=True)
        time = torch.arange(self.planner.segment, device=self.device)
        inside = time < (self.lengths[clips] - offsets)[..., None]  # zero past a clip's end
        index = (self.starts[clips] + offsets)[..., None] + time
        samples = self.audio[index.clamp(max=self.audio.numel() - 1)]
        candidates = samples.float().mul_(inside) / 32768
        return finish(candidates, plan, self.silence_db, self.planner.augment)

    def batches(self, start: int, stop: int) -> Iterator[torch.Tensor]:
        """Batches of steps start..stop-1."""
        return (self.batch(step) for step in range(start, stop))


def _ignore_interrupts(worker_id: int) -> None:
    """Workers leave Ctrl-C and SIGTERM to the main process, which stops the run cleanly
    and then them: both reach the whole process group (a terminal's Ctrl-C, `timeout`,
    `kill -- -PGID`, a scheduler cancelling a job), and a worker that died of one would
    end the run with an error instead of a saved state. A worker still exits when its
    parent dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class StreamCrops(Dataset):
    """Map-style dataset whose item `step` is the batch of that step, read from disk."""

    def __init__(self, clips: Sequence[Clip], planner: CropPlanner, silence_db: float,
                 workers: int = 2) -> None:
        self.clips, self.planner, self.silence_db = list(clips), planner, silence_db
        self.workers = workers

    def __getitem__(self, step: int) -> torch.Tensor:
        plan = self.planner.plan(step)
        segment = self.planner.segment
        candidates = torch.from_numpy(np.stack([
            np.stack([read_window(self.clips[c], o, segment) for c, o in zip(cs, os)])
            for cs, os in zip(plan.clips.tolist(), plan.offsets.tolist())]))
        return finish(candidates, plan, self.silence_db, self.planner.augment)

    def batches(self, start: int, stop: int, pin_memory: bool = False) -> Iterator[torch.Tensor]:
        """Batches of steps start..stop-1, prepared ahead by worker processes."""
        # The batches need no randomness of the loader's; its own generator keeps it from
        # drawing its base seed from the global RNG, which a resumed run has just restored.
        loader = DataLoader(self, batch_size=None, sampler=range(start, stop),
                            num_workers=self.workers, pin_memory=pin_memory,
                            prefetch_factor=4 if self.workers else None,
                            worker_init_fn=_ignore_interrupts,
                            generator=torch.Generator().manual_seed(0))
        return iter(loader)
