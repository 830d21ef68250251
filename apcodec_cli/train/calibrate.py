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
with the corrected decoder (the overlap-add loss depends a little on the level balance), and
a last one shifts every bin alike so that the windows' levels in dB average 0, the figure
`apcodec eval` reports. The windows come from every training package of each category in
turn, short clips whole (`pick_windows`).

    python scripts/calibrate.py --weights IN.pt --data data/corpus --out OUT.pt
"""

from __future__ import annotations

import math
import sys

import click
import torch
from tqdm import tqdm

from ..evaluate.metrics import SILENT_DECODED_RMS, SILENT_SOURCE_RMS
from ..models import weights
from ..nn import spectral
from ..nn.model import APCodec
from ..units import SAMPLE_RATE
from .data import Clip, read_window


def pick_windows(clips: list[Clip], count: int, samples: int, shortest: int | None = None,
                 multiple: int = 1) -> list[tuple[Clip, int, int]]:
    """`count` windows (clip, start, length) of training audio: as many from each category
    (speech, music, ...), since each is judged on its own; within a category the packages
    (sources) take turns, and each package's windows are spread evenly over its clips
    (sorted by path, so the choice is the same on every machine). A window is the middle
    `samples` of a clip, or the whole of a shorter clip of at least `shortest` samples
    (default: `samples`), its length a multiple of `multiple`.

    Why: picking over all clips at once took 82 music windows of 96 from the 2026-12-04
    corpus, whose long clips are mostly music, and left speech 1.3 dB quieter than music.
    Taking only clips of a whole window left out the speech packages of short clips (of
    klettres-data's 1 540 clips none reaches 4 s, of tuxpaint-stamps-default's 5 860, 173):
    calibrated that way, a model decoded them 2.4 and 1.3 dB quiet (2026-12-07), and speech
    from sources never trained on 1.4 dB quiet."""
    shortest = samples if shortest is None else max(1, min(shortest, samples))
    usable = sorted((c for c in clips if c.split == "train" and c.frames >= shortest),
                    key=lambda c: (c.path, c.offset))
    if not usable:
        raise click.ClickException(f"no training clip of {shortest / SAMPLE_RATE:.1f} s or more")
    categories = sorted({c.category for c in usable})
    picked = []
    for i, category in enumerate(categories):
        want = count // len(categories) + (i < count % len(categories))
        by_package: dict[str, list[Clip]] = {}
        for clip in usable:
            if clip.category == category:
                by_package.setdefault(clip.package, []).append(clip)
        packages = sorted(by_package)
        for j, package in enumerate(packages):
            mine = by_package[package]
            share = want // len(packages) + (j < want % len(packages))
            step = max(1, len(mine) // max(share, 1))
            for clip in mine[::step][:share]:
                length = min(samples, clip.frames) // multiple * multiple
                if length > 0:
                    picked.append((clip, (clip.frames - length) // 2, length))
    return picked


@torch.no_grad()
def measure(model: APCodec, windows: list[tuple[Clip, int, int]],
            quiet: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode each window; returns (ratio, levels). `ratio` (n_bins,) is the sum over
    windows of the source's STFT energy per bin over the decoded's, each window's energies
    divided by its source's total so that every window counts alike (pooled raw energies
    let the loudest windows set the level of all). `levels` is each window's decoded level
    against its source in dB, as `apcodec eval` reports it per clip, where the decoded
    window is not silent. A silent source window (as `metrics.level_db` calls one) is left
    out of both."""
    config = model.config
    source = torch.zeros(config.n_bins, dtype=torch.float64)
    decoded = torch.zeros(config.n_bins, dtype=torch.float64)
    levels = []
    for clip, start, length in tqdm(windows, desc="calibrating", unit="clip", file=sys.stderr,
                                    disable=quiet or not sys.stderr.isatty()):
        wav = torch.from_numpy(read_window(clip, start, length)).float().view(1, 1, -1)
        if math.sqrt(float(wav.square().mean())) <= SILENT_SOURCE_RMS:  # no level, no weight
            continue
        out = model(wav).wav
        src = spectral.stft(wav, config).abs().square().sum(dim=(0, 2)).double()
        dec = spectral.stft(out, config).abs().square().sum(dim=(0, 2)).double()
        scale = src.sum().clamp(min=1e-20)
        source += src / scale
        decoded += dec / scale
        if math.sqrt(float(out.square().mean())) > SILENT_DECODED_RMS:  # as eval
            levels.append(10 * math.log10(float(dec.sum() / scale)))
    return source / decoded.clamp(min=1e-20), torch.tensor(levels, dtype=torch.float64)


def bin_energy_ratio(model: APCodec, windows: list[tuple[Clip, int, int]],
                     quiet: bool = False) -> torch.Tensor:
    """The `ratio` of `measure`."""
    return measure(model, windows, quiet)[0]


def calibrate(model: APCodec, windows: list[tuple[Clip, int, int]], passes: int = 2,
              quiet: bool = False) -> torch.Tensor:
    """Shift the amplitude head's bias in place; returns the total offset (n_bins,) in
    natural-log units.

    `passes` passes match each bin's pooled energy; a last one moves every bin alike so
    that the mean of the windows' levels in dB is 0. Matching pooled energies matches the
    mean of the windows' energy ratios, which lies above the mean of their logarithms
    (the level `apcodec eval` averages) by an amount that grows with their spread."""
    head = model.decoder.amplitude_head
    total = torch.zeros_like(head.bias)
    for _ in range(passes):
        delta = 0.5 * torch.log(bin_energy_ratio(model, windows, quiet)).float()
        head.bias.data += delta
        total += delta
    _, levels = measure(model, windows, quiet)
    # A log-amplitude offset c scales the decoded waveform by e^c: 20 c / ln 10 dB.
    shift = float(-levels.mean()) * math.log(10) / 20 if len(levels) else 0.0
    head.bias.data += shift
    total += shift
    return total
