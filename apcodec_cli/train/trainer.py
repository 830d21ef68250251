"""One optimisation step of the APCodec GAN, and everything it updates.

`Trainer` owns the generator (the codec, weight-normed), the discriminators, their AdamW
optimisers and learning-rate schedules; `step(wav)` runs a discriminator update then a
generator update; `state_dict()` / `load_state_dict()` make a run resumable exactly.

Precision: with bf16 (on CUDA, or on a CPU with bf16 instructions) the networks run under
bfloat16 autocast, while the STFT, the vector quantizer's nearest-neighbour search, the
decoder's output heads, the iSTFT and all losses stay float32.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import warnings
from typing import Any, ContextManager, Iterator

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..runtime import cpu_has_native_bf16
from ..nn import spectral
from ..nn.model import APCodec, CodecOutput
from .checkpoint import apply_weight_norm
from .codebook import CodebookReviver
from .config import TrainConfig
from .discriminators import Discriminators
from .distill import Teacher, distillation_loss
from .distributed import Process
from .losses import (GeneratorLosses, Targets, discriminator_hinge, feature_matching,
                     generator_hinge, generator_loss, hop_line_loss, long_stft_loss)
from .mel import LogMel
from .neurogram import Neurogram, neurogram_losses


class Generator(nn.Module):
    """The codec's training pass with explicit precision regions (see module docstring)."""

    def __init__(self, codec: APCodec, bf16: bool, freeze_encoder: bool = False) -> None:
        super().__init__()
        self.codec = codec
        self.bf16 = bf16
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            codec.encoder.requires_grad_(False)
            codec.quantizer.requires_grad_(False)

    def autocast(self, device: torch.device) -> ContextManager:
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def forward(self, log_amp: torch.Tensor, phase: torch.Tensor) -> CodecOutput:
        """True spectra (B, n_bins, F) -> decoded spectra and waveform (float32)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            with self.autocast(log_amp.device):
                latent = self.codec.encoder(log_amp, phase)
            quantized = self.codec.quantizer(latent.float())
        with self.autocast(log_amp.device):
            amp, pha = self.codec.decoder.branches(quantized.latent)
        # The heads run in float32: the losses compare their outputs to float32 targets.
        log_amp_hat, phase_hat = self.codec.decoder.heads(amp.float(), pha.float())
        wav = spectral.synthesise(log_amp_hat, phase_hat, self.codec.config)
        return CodecOutput(log_amp_hat, phase_hat, wav, quantized, latent)


@dataclasses.dataclass
class StepResult:
    """Losses of one step: the generator's terms and the discriminators' loss (0 before
    `gan_start`)."""

    generator: GeneratorLosses
    discriminator: torch.Tensor


class Trainer:
    """Generator, discriminators, optimisers and schedules of one run."""

    def __init__(self, config: TrainConfig, process: Process) -> None:
        torch.manual_seed(config.seed)  # the same initial weights on every process
        device = process.device
        self.config, self.process = config, process
        self.codec = apply_weight_norm(APCodec(config.codec)).to(device)
        self.disc = Discriminators(config.mpd_channels, config.mrd_channels).to(device)
        self.log_mel = LogMel(config.codec.sample_rate).to(device)
        self.neurogram = (Neurogram(config.codec.sample_rate).to(device)
                          if config.loss.uses_neurogram else None)
        bf16 = (config.bf16 and device.type == "cuda") or \
            (config.cpu_bf16 and device.type == "cpu" and cpu_has_native_bf16())
        self.generator = Generator(self.codec, bf16, config.freeze_encoder)
        self.g_net = self._parallel(self.generator)
        if config.compile:
            self.g_net = torch.compile(self.g_net)
        self.d_net = self._parallel(self.disc)
        self.opt_g, self.sched_g = self._optimiser(self.codec)
        self.opt_d, self.sched_d = self._optimiser(self.disc)
        self.reviver = CodebookReviver(self.codec.quantizer,
                                       0 if config.freeze_encoder else config.revive_every,
                                       process)
        self.teacher = Teacher(config.teacher, config.codec, device) if config.teacher else None
        self.step_count = 0
        self.skipped_updates = 0  # updates left out for non-finite gradients (this process)

    def _parallel(self, module: nn.Module) -> nn.Module:
        if not self.process.distributed:
            return module
        ids = [self.process.device.index] if self.process.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def _optimiser(self, module: nn.Module) -> tuple[torch.optim.Optimizer, Any]:
        c = self.config
        params = [p for p in module.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=c.lr, betas=c.betas,
                                weight_decay=c.weight_decay)
        return opt, torch.optim.lr_scheduler.ExponentialLR(opt, gamma=c.lr_decay)

    @property
    def lr(self) -> float:
        return self.opt_g.param_groups[0]["lr"]

    def targets(self, wav: torch.Tensor) -> Targets:
        """Float32 spectra of the true waveform (B, 1, T)."""
        spec = spectral.stft(wav, self.config.codec)
        return Targets(torch.log(spec.abs() + spectral.LOG_FLOOR), torch.angle(spec), spec,
                       self.log_mel(self.complete(wav)))

    def complete(self, wav: torch.Tensor) -> torch.Tensor:
        """The part of a (B, 1, T) crop that the decoder finishes: all of it, except for a
        causal model the last code frame, whose samples wait for frames after the crop."""
        codec = self.config.codec
        return wav[..., :wav.shape[-1] - codec.samples_per_frame] if codec.causal else wav

    def step(self, wav: torch.Tensor) -> StepResult:
        """One discriminator update (once the GAN has started) then one generator update."""
        target = self.targets(wav)
        out = self.g_net(target.log_amp, target.phase)
        distill = (distillation_loss(out, self.teacher(wav), self.config.loss)
                   if self.teacher else None)
        wav, out = self.complete(wav), dataclasses.replace(out, wav=self.complete(out.wav))
        gan = self.step_count >= self.config.gan_start
        loss_d = (self._discriminator_step(wav, out.wav) if gan
                  else torch.zeros((), device=wav.device))
        losses = self._generator_step(wav, out, target, gan, distill)
        self.reviver.update(out.quantized, self.step_count)
        self.step_count += 1
        if self.step_count % self.config.steps_per_epoch == 0:
            self.sched_g.step()
            with warnings.catch_warnings():
                # Before the GAN starts the discriminators' optimiser has never stepped,
                # which torch warns about; their schedule advances all the same, so that a
                # late GAN starts at the generator's learning rate.
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler")
                self.sched_d.step()
        return StepResult(losses, loss_d)

    def _judge(self, net: nn.Module, wav: torch.Tensor, wav_hat: torch.Tensor) -> tuple:
        """Discriminate real and decoded audio in one pass: ((mpd real, fake), (mrd ...))."""
        with self.generator.autocast(wav.device):
            mpd, mrd = net(torch.cat([wav, wav_hat]))
        return mpd.halves(), mrd.halves()

    def _discriminator_step(self, wav: torch.Tensor, wav_hat: torch.Tensor) -> torch.Tensor:
        (mpd_r, mpd_f), (mrd_r, mrd_f) = self._judge(self.d_net, wav, wav_hat.detach())
        loss = (discriminator_hinge(mpd_r.logits, mpd_f.logits)
                + self.config.loss.mrd * discriminator_hinge(mrd_r.logits, mrd_f.logits))
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self._update(self.opt_d, self.disc)
        return loss.detach()

    def _generator_step(self, wav: torch.Tensor, out: CodecOutput, target: Targets,
                        gan: bool, distill: torch.Tensor | None) -> GeneratorLosses:
        zero = torch.zeros((), device=wav.device)
        # The discriminators stay frozen here: no gradients reach their weights.
        with self._frozen(self.disc):
            adversarial, feature = self._adversarial(wav, out.wav) if gan else (zero, zero)
            loss_weights = self.config.loss
            long_stft = (long_stft_loss(wav, out.wav, loss_weights.long_stft_windows)
                         if loss_weights.long_stft > 0 else None)
            texture, levels = (neurogram_losses(self.neurogram, wav, out.wav)
                               if self.neurogram is not None else (None, None))
            texture = texture if loss_weights.neurogram > 0 else None  # logged as 0
            levels = levels if loss_weights.band_levels > 0 else None
            lines = (hop_line_loss(wav, out.wav, self.config.codec.hop_length,
                                   loss_weights.hop_lines_excess)
                     if loss_weights.hop_lines > 0 else None)
            losses = generator_loss(out, target, self.log_mel(out.wav), adversarial, feature,
                                    self.config.codec, loss_weights, distill, long_stft,
                                    texture, lines, levels)
            self.opt_g.zero_grad(set_to_none=True)
            losses.total.backward()
        self._update(self.opt_g, self.codec)
        return losses

    def _adversarial(self, wav: torch.Tensor, wav_hat: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """The generator's hinge and feature-matching losses, each MPD + w·MRD.

        The bare discriminators are used (not their DDP wrapper): nothing of theirs is
        updated in this pass, so there is nothing to synchronise.
        """
        w = self.config.loss.mrd
        (mpd_r, mpd_f), (mrd_r, mrd_f) = self._judge(self.disc, wav, wav_hat)
        return (generator_hinge(mpd_f.logits) + w * generator_hinge(mrd_f.logits),
                feature_matching(mpd_r, mpd_f) + w * feature_matching(mrd_r, mrd_f))

    def _update(self, optimiser: torch.optim.Optimizer, module: nn.Module) -> None:
        """Clip the gradients (to `grad_clip`, if set) and apply them, unless they are not
        finite: one bad batch (a NaN or an infinity anywhere in the backward pass) skips its
        update and is counted in `skipped_updates`, instead of turning every weight into NaN
        (a distillation run did that at step 2 600, 2026-11-24). The check costs one host
        sync per update; under DDP the gradients are already averaged, so every process
        skips alike."""
        norm = torch.nn.utils.clip_grad_norm_(module.parameters(),
                                              self.config.grad_clip or math.inf)
        if torch.isfinite(norm):
            optimiser.step()
        else:
            optimiser.zero_grad(set_to_none=True)
            self.skipped_updates += 1

    @staticmethod
    @contextlib.contextmanager
    def _frozen(module: nn.Module) -> Iterator[None]:
        module.requires_grad_(False)
        try:
            yield
        finally:
            module.requires_grad_(True)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, optimisers, schedules, step."""
        return {"step": self.step_count, "generator": self.codec.state_dict(),
                "discriminators": self.disc.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "sched_g": self.sched_g.state_dict(), "sched_d": self.sched_d.state_dict(),
                "reviver": self.reviver.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (tensors may be on any device)."""
        self.codec.load_state_dict(state["generator"])
        self.disc.load_state_dict(state["discriminators"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.sched_g.load_state_dict(state["sched_g"])
        self.sched_d.load_state_dict(state["sched_d"])
        self.reviver.load_state_dict(state["reviver"])
        self.step_count = int(state["step"])
