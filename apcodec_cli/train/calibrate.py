"""Level calibration of trained weights: one offset per frequency bin on the decoded
log-amplitude, so that decoded audio carries its source's energy.

Why it is needed: the amplitude decoder is trained with squared errors on the *log*
amplitude. Where the fine structure of a spectrum cannot be predicted from the codes, the
best such estimate is the mean of the log, a geometric mean, which lies below the log of the
mean energy; the phase decoder's inconsistencies lose a little more energy in the overlap-add.
Measured on the validation clips (`python scripts/diagnose.py`), decoded audio
came out 4-5 dB quieter than its source before calibration.

What it does: decodes training audio (the validation split is never used) through the codec
in float32, compares the energy of each STFT bin of the decoded waveform with the source's,

    delta_k = 0.5 * ln( sum_t |X_k,t|^2 / sum_t |Y_k,t|^2 ),

and adds delta_k to the amplitude head's bias (the head is a 1x1 convolution, so this shifts
bin k's log-amplitude by exactly delta_k). Encoder, quantizer and phase decoder are untouched:
the codes of any audio are unchanged, only the decoded level moves. A second pass re-measures
with the corrected decoder (the overlap-add loss depends a little on the level balance).

    python scripts/calibrate.py --weights IN.pt --data data/corpus --out OUT.pt
"""

from __future__ import annotations

import sys

import click
import torch
from tqdm import tqdm

from ..models import weights
from ..nn import spectral
from ..nn.model import APCodec
from ..units import SAMPLE_RATE
from .data import Clip, read_window


def pick_windows(clips: list[Clip], count: int, samples: int) -> list[tuple[Clip, int]]:
    """`count` windows of `samples` from training clips long enough: as many from each
    category (speech, music, ...), since each is judged on its own, spread evenly over that
    category's clips (sorted by path, so the choice is the same on every machine). Picking
    over all clips at once took 82 music windows of 96 from the 2026-12-04 corpus, whose
    long clips are mostly music, and left speech 1.3 dB quieter than music."""
    usable = sorted((c for c in clips if c.split == "train" and c.frames >= samples),
                    key=lambda c: (c.path, c.offset))
    if not usable:
        raise click.ClickException(f"no training clip of {samples / SAMPLE_RATE:.1f} s or more")
    categories = sorted({c.category for c in usable})
    picked = []
    for i, category in enumerate(categories):
        mine = [c for c in usable if c.category == category]
        want = count // len(categories) + (i < count % len(categories))
        step = max(1, len(mine) // max(want, 1))
        picked += [(c, (c.frames - samples) // 2) for c in mine[::step][:want]]
    return picked


@torch.no_grad()
def bin_energy_ratio(model: APCodec, windows: list[tuple[Clip, int]], samples: int,
                     quiet: bool = False) -> torch.Tensor:
    """(n_bins,) sum over windows of the source's STFT energy per bin over the decoded's,
    each window's energies divided by its source's total so that every window counts alike
    (pooled raw energies let the loudest windows set the level of all; the level error that
    `apcodec eval` reports is a mean over clips)."""
    config = model.config
    source = torch.zeros(config.n_bins, dtype=torch.float64)
    decoded = torch.zeros(config.n_bins, dtype=torch.float64)
    for clip, start in tqdm(windows, desc="calibrating", unit="clip", file=sys.stderr,
                            disable=quiet or not sys.stderr.isatty()):
        wav = torch.from_numpy(read_window(clip, start, samples)).float().view(1, 1, -1)
        out = model(wav).wav
        src = spectral.stft(wav, config).abs().square().sum(dim=(0, 2)).double()
        dec = spectral.stft(out, config).abs().square().sum(dim=(0, 2)).double()
        scale = src.sum().clamp(min=1e-20)
        source += src / scale
        decoded += dec / scale
    return source / decoded.clamp(min=1e-20)


def calibrate(model: APCodec, windows: list[tuple[Clip, int]], samples: int,
              passes: int = 2, quiet: bool = False) -> torch.Tensor:
    """Shift the amplitude head's bias in place; returns the total offset (n_bins,) in
    natural-log units."""
    head = model.decoder.amplitude_head
    total = torch.zeros_like(head.bias)
    for _ in range(passes):
        delta = 0.5 * torch.log(bin_energy_ratio(model, windows, samples, quiet)).float()
        head.bias.data += delta
        total += delta
    return total
