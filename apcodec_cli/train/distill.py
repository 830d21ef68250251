"""Knowledge distillation of the full (non-causal) model into the streamable one.

The published APCodec-S is trained with distillation from APCodec but its targets are not
published. Ours, each chosen for what the causal student loses:

* the teacher's **latent** before quantization (MSE): the causal encoder cannot look ahead,
  and the teacher's latent says what a frame should carry once the future is known. It
  also keeps the student in the latent space of the codebooks it inherits from the teacher;
* the teacher's **decoded log-amplitude** (MSE) and **decoded phase** (the anti-wrapped
  instantaneous-phase, group-delay and time-difference losses): soft targets that a
  decoder of codes can reach, unlike the true spectra, which the codes only approximate.
  The true-spectrum losses of the recipe stay in place beside them.

Alignment: a causal STFT frame ends where the non-causal one is centred plus
win_length / 2 - hop_length samples (120), so the teacher is fed the waveform delayed by that
much and its frames, latents and spectra line up one to one with the student's.
"""

from __future__ import annotations

import dataclasses
import os

import torch
import torch.nn.functional as F

from ..models import weights
from ..nn import spectral
from ..nn.config import CodecConfig
from ..nn.model import CodecOutput
from .checkpoint import same_shapes
from .config import LossWeights
from .losses import floored, phase_losses, phase_weight


@dataclasses.dataclass
class TeacherOutput:
    """The teacher's view of a batch, aligned with the student's frames (float32)."""

    latent: torch.Tensor
    log_amp: torch.Tensor
    phase: torch.Tensor


class Teacher:
    """A frozen non-causal codec whose outputs the causal student learns to match.

    Args:
        path: The teacher's weights file.
        student: The student's configuration (causal, same shapes).
        device: Where the teacher runs.
    """

    def __init__(self, path: str | os.PathLike, student: CodecConfig,
                 device: torch.device) -> None:
        loaded = weights.load(path, device)
        config = loaded.model.config
        if config.causal or not student.causal or not same_shapes(config, student):
            raise ValueError(f"{path} ({config.name}) cannot teach {student.name}: the teacher "
                             "must be the non-causal twin of the causal student")
        self.model = loaded.model.eval().requires_grad_(False)
        self.fingerprint = loaded.fingerprint
        self.delay = config.win_length // 2 - config.hop_length

    @torch.no_grad()
    def __call__(self, wav: torch.Tensor) -> TeacherOutput:
        """Teacher outputs for a (B, 1, T) batch, frame-aligned with the causal student."""
        model = self.model
        delayed = F.pad(wav, (self.delay, 0))[..., :wav.shape[-1]]
        latent = model.encoder(*spectral.analyse(delayed, model.config))
        log_amp, phase = model.decoder(model.quantizer.decode(model.quantizer.encode(latent)))
        return TeacherOutput(latent.float(), log_amp.float(), phase.float())


def distillation_loss(out: CodecOutput, teacher: TeacherOutput,
                      weights: LossWeights) -> torch.Tensor:
    """Weighted sum of the latent, amplitude and phase distillation terms."""
    ip, gd, ptd = phase_losses(teacher.phase, out.phase.float(),
                               phase_weight(teacher.log_amp, weights.phase_power))
    return (weights.distill_latent * F.mse_loss(out.encoded.float(), teacher.latent)
            + weights.distill_amplitude * F.mse_loss(
                *floored(teacher.log_amp, out.log_amp.float(), weights.log_floor_db))
            + weights.distill_phase * (ip + gd + ptd))
