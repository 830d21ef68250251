"""Periodic validation: spectral distances and codebook usage on held-out clips."""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import torch

from ..model import APCodec
from .data import SAMPLE_RATE, Clip, read_clip
from .mel import LogMel
from .pack import log_spectral_distance


@dataclasses.dataclass
class ValidationResult:
    """Scores of the codec on the validation clips.

    Attributes:
        lsd_db: Mean log-spectral distance in dB (lower is better).
        mel_l1: Mean L1 distance of the log-mel spectrograms (lower is better).
        perplexity: Mean over codebooks of exp(entropy of code usage); at most codebook_size.
        usage: Mean over codebooks of the fraction of entries used at least once.
    """

    lsd_db: float
    mel_l1: float
    perplexity: float
    usage: float


def load_validation(clips: Sequence[Clip], count: int, seconds: float,
                    samples_per_frame: int) -> list[torch.Tensor]:
    """Up to `count` validation clips, evenly spread over the list, as (1, 1, T) tensors.

    Each is the middle `seconds` of its clip (or all of it), cut to whole latent frames.
    """
    pool = [c for c in clips if c.split == "validation" and c.frames >= samples_per_frame]
    chosen = pool[:: max(1, math.ceil(len(pool) / count))][:count] if count else []
    wavs = []
    for clip in chosen:
        audio = torch.from_numpy(read_clip(clip))
        length = min(audio.numel(), int(seconds * SAMPLE_RATE))
        length -= length % samples_per_frame
        start = (audio.numel() - length) // 2
        wavs.append(audio[start:start + length].view(1, 1, -1))
    return wavs


@torch.inference_mode()
def validate(model: APCodec, wavs: Sequence[torch.Tensor], log_mel: LogMel,
             device: torch.device) -> ValidationResult:
    """Code and decode every clip in float32 and score the results."""
    was_training = model.training
    model.eval()
    c = model.config
    counts = torch.zeros(c.n_codebooks, c.codebook_size, device=device)
    lsd, mel = [], []
    for wav in wavs:
        wav = wav.to(device)
        out = model(wav)
        lsd.append(log_spectral_distance(wav.flatten().cpu().numpy(),
                                         out.wav.flatten().float().cpu().numpy()))
        mel.append((log_mel(wav) - log_mel(out.wav)).abs().mean().item())
        for i, codes in enumerate(out.quantized.codes[0]):
            counts[i] += torch.bincount(codes, minlength=c.codebook_size)
    model.train(was_training)
    share = counts / counts.sum(dim=1, keepdim=True)
    entropy = -(share * share.clamp(min=1e-12).log()).sum(dim=1)
    lsd = [x for x in lsd if not math.isnan(x)]
    return ValidationResult(
        lsd_db=sum(lsd) / len(lsd) if lsd else math.nan,
        mel_l1=sum(mel) / len(mel),
        perplexity=entropy.exp().mean().item(),
        usage=(counts > 0).float().mean().item(),
    )
