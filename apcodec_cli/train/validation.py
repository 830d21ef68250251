"""Periodic validation: what people hear, on held-out clips of each category.

Every validation codes and decodes the same clips (float32, one whole-signal pass) and logs:

    field          clips    meaning
    lsd_db         all      log-spectral distance, dB (lower is better)
    mel_l1         all      L1 distance of log-mel spectrograms (lower is better)
    level_db       all      mean level of the decoded clip against its source, dB (0 is right)
    level_abs_db   all      mean absolute level error, dB
    speech_pesq    speech   PESQ wide-band, 1.04-4.64 (higher is better)
    speech_estoi   speech   extended STOI, 0-1 (higher is better)
    music_visqol   music    ViSQOL v3 audio mode, 1-4.75 (higher is better)
    perplexity     all      mean over codebooks of exp(entropy of code usage)
    usage          all      mean over codebooks of the fraction of entries used
    hop_lines_db, hop_peaks_db, off_peaks_db, code_lines_db, quiet_floor_db,
    bandwidth_loss_khz
                   all      the artefacts of `evaluate.artefacts` (0 is right)
    tone_*_level_db, sweep_level_db, tone_*_shift_hz
                   tones    sines at 1, 2 and 8 kHz and a sweep at -20 dBFS (`tones=True`):
                            level error in dB and the sines' peak shift in Hz

Every metric comes from `evaluate.metrics`, the functions of `apcodec eval`, so the two
report the same numbers; where the `eval` extra is not installed the perceptual ones are NaN.
Clips are chosen per category from the data folder's labels (a corpus manifest or a pack
index), so speech metrics are measured on speech and the music metric on music.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from typing import Callable, Sequence

import numpy as np
import torch

from ..evaluate import artefacts, metrics
from ..nn.model import APCodec
from .data import SAMPLE_RATE, Clip, read_clip

#: The perceptual metric of each category: (log field, metric function).
CATEGORY_METRICS: dict[str, tuple[tuple[str, Callable[..., float]], ...]] = {
    "speech": (("speech_pesq", metrics.pesq_wb), ("speech_estoi", metrics.estoi)),
    "music": (("music_visqol", metrics.visqol),),
}


@dataclasses.dataclass
class ValidationResult:
    """Scores of the codec on the validation clips (fields: see the module docstring)."""

    lsd_db: float
    mel_l1: float
    perplexity: float
    usage: float
    level_db: float = math.nan
    level_abs_db: float = math.nan
    speech_pesq: float = math.nan
    speech_estoi: float = math.nan
    music_visqol: float = math.nan
    hop_lines_db: float = math.nan
    hop_peaks_db: float = math.nan
    off_peaks_db: float = math.nan
    code_lines_db: float = math.nan
    quiet_floor_db: float = math.nan
    bandwidth_loss_khz: float = math.nan
    tone_1k_level_db: float = math.nan
    tone_2k_level_db: float = math.nan
    tone_8k_level_db: float = math.nan
    sweep_level_db: float = math.nan
    tone_1k_shift_hz: float = math.nan
    tone_2k_shift_hz: float = math.nan
    tone_8k_shift_hz: float = math.nan


@dataclasses.dataclass(frozen=True)
class ValidationClip:
    """One validation clip: (1, 1, T) float32 at 48 kHz and its category ('' if unknown)."""

    wav: torch.Tensor
    category: str


def load_validation(clips: Sequence[Clip], count: int, seconds: float,
                    samples_per_frame: int, split: str = "validation") -> list[ValidationClip]:
    """Up to `count` clips of `split` of each category, evenly spread over its list.

    Each is the middle `seconds` of its clip (or all of it), cut to whole latent frames.
    """
    pools: dict[str, list[Clip]] = defaultdict(list)
    for clip in clips:
        if clip.split == split and clip.frames >= samples_per_frame:
            pools[clip.category].append(clip)
    out = []
    for category in sorted(pools):
        pool = pools[category]
        chosen = pool[:: max(1, math.ceil(len(pool) / count))][:count] if count else []
        for clip in chosen:
            audio = torch.from_numpy(read_clip(clip))
            length = min(audio.numel(), int(seconds * SAMPLE_RATE))
            length -= length % samples_per_frame
            start = (audio.numel() - length) // 2
            out.append(ValidationClip(audio[start:start + length].view(1, 1, -1), category))
    return out


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _perceptual(field: str, metric: Callable[..., float], ref: np.ndarray,
                deg: np.ndarray) -> float:
    try:
        return metric(ref, deg, SAMPLE_RATE)
    except metrics.MissingDependencyError:
        return math.nan


@torch.inference_mode()
def tone_scores(model: APCodec, device: torch.device) -> dict[str, float]:
    """`artefacts.tone_errors` of the model: the test signals through one whole-signal
    pass each, cut to whole latent frames (the model's mode is left to the caller)."""
    def round_trip(x: np.ndarray) -> np.ndarray:
        frames = len(x) - len(x) % model.config.samples_per_frame
        wav = torch.from_numpy(x[:frames]).float().view(1, 1, -1).to(device)
        return model(wav).wav.flatten().double().cpu().numpy()

    return artefacts.tone_errors(round_trip, SAMPLE_RATE)


@torch.inference_mode()
def validate(model: APCodec, clips: Sequence[ValidationClip], device: torch.device,
             tones: bool = False) -> ValidationResult:
    """Code and decode every clip in float32 and score the results (the mel distance is
    `metrics.log_mel_distance`, in float64 like `apcodec eval`'s); with `tones`, the
    synthetic test signals too."""
    was_training = model.training
    model.eval()
    c = model.config
    counts = torch.zeros(c.n_codebooks, c.codebook_size, device=device)
    scores: dict[str, list[float]] = defaultdict(list)
    for clip in clips:
        wav = clip.wav.to(device)
        out = model(wav)
        ref = wav.flatten().double().cpu().numpy()
        deg = out.wav.flatten().double().cpu().numpy()
        scores["lsd_db"].append(metrics.log_spectral_distance(ref, deg, SAMPLE_RATE))
        scores["mel_l1"].append(metrics.log_mel_distance(ref, deg, SAMPLE_RATE))
        level = metrics.level_db(ref, deg)
        scores["level_db"].append(level)
        scores["level_abs_db"].append(abs(level))
        for field, value in artefacts.clip_artefacts(ref, deg, SAMPLE_RATE, c.hop_length,
                                                     c.samples_per_frame).items():
            scores[field].append(value)
        for field, metric in CATEGORY_METRICS.get(clip.category, ()):
            scores[field].append(_perceptual(field, metric, ref, deg))
        for i, codes in enumerate(out.quantized.codes[0]):
            counts[i] += torch.bincount(codes, minlength=c.codebook_size)
    if tones:
        for field, value in tone_scores(model, device).items():
            scores[field].append(value)
    model.train(was_training)
    share = counts / counts.sum(dim=1, keepdim=True)
    entropy = -(share * share.clamp(min=1e-12).log()).sum(dim=1)
    return ValidationResult(
        perplexity=entropy.exp().mean().item(), usage=(counts > 0).float().mean().item(),
        **{field: _mean(values) for field, values in scores.items()})
