"""Training hyper-parameters: one frozen dataclass, its loss weights and named presets.

A run records `TrainConfig.to_dict()` in full (codec included) next to its log, and a
resumed run keeps the configuration it started with.

Two choices differ from the published recipe on purpose:

* Segments are 8000 samples, not 7960: our framing (see `spectral.py`) needs a multiple of
  320 samples; 8000 samples give the same 200 STFT frames and 25 latent frames that 7960
  samples give with the reference's framing.
* The data is a stream of random crops, so an "epoch" (the unit of the learning-rate decay)
  is defined as `steps_per_epoch` steps: 2500 by default, about one pass over the ~40 000
  VCTK training utterances at batch 16, as in the reference.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, Mapping

from ..nn.config import CodecConfig, get_preset


#: Bits of the run's seed: it leads the 64-bit seed of each step's crops (train/crops.py).
SEED_BITS = 23


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """Weights of the generator and discriminator loss terms (published values).

    Generator total = amplitude*L_A + phase*L_P + spectral*(L_C + real_imag*(L_R + L_I))
    + GAN + FM + mel*(L1 + MSE of log-mel) + codebook*L_cb + commitment*L_commit, where every
    adversarial term (generator, discriminator, feature matching) is MPD + mrd*MRD.
    With a teacher (see train/distill.py) the total also has distill_latent*MSE(latent) +
    distill_amplitude*MSE(log-amplitude) + distill_phase*L_P against the teacher's outputs.

    `phase_power` weighs each bin's phase errors by its true amplitude to this power (0:
    the published plain mean; 1: as much as the complex error they cause; see
    `losses.phase_weight`). `log_floor_db` > 0 lets the log-amplitude, log-mel and distilled
    log-amplitude losses ignore errors more than that many dB below each crop's loudest
    true (or teacher's) bin (0: the published losses; see `losses.floored`). `long_stft`
    > 0 adds that weight times `losses.long_stft_loss`, a log-magnitude L1 of the decoded
    waveform under Hann windows of `long_stft_windows` samples, hop a quarter window
    (0: the published losses). `neurogram` > 0 adds that weight times the texture term
    of `neurogram.neurogram_losses`, one minus the NSIM of the decoded waveform's
    gammatone neurogram against the true one's, the texture ViSQOL scores music on (0: the
    published losses). `band_levels` > 0 adds that weight times the other term of
    `neurogram.neurogram_losses`, the mean absolute dB difference of the two neurograms:
    how far each band's envelope strays from the true one's (0: the published losses).
    `hop_lines` > 0 adds that weight times `losses.hop_line_loss`, the error of the decoded
    waveform's component of period one STFT hop, a buzz at multiples of the frame rate (0:
    the published losses); with `hop_lines_excess`, only the power its lines hold beyond
    the true ones' is penalised, not their phase. `coherence` > 0 adds that weight times
    `losses.coherence_loss`, how much more steadily each decoded bin's phasor keeps to one
    of the rates of the code's 8-frame pattern than the true one's, over 53 ms: a locked
    phase, which the inverse STFT turns into lines at multiples of 150 Hz and 1.2 kHz (0:
    the published losses). `phase_lag` > 0 adds that weight times
    `losses.phase_lag_loss`, the phase-time-difference loss over `phase_lags` frames instead
    of one: how far each decoded bin's frequency strays, which one frame cannot see (0: the
    published losses). `level` > 0 adds that weight times `losses.level_loss`, the dB error
    of each crop's decoded energy in 12 bands: the level clip by clip (0: the published
    losses).
    """

    amplitude: float = 45.0
    phase: float = 100.0
    spectral: float = 20.0
    real_imag: float = 2.25
    mel: float = 45.0
    codebook: float = 10.0
    commitment: float = 2.5
    mrd: float = 0.1
    distill_latent: float = 10.0
    distill_amplitude: float = 45.0
    distill_phase: float = 100.0
    phase_power: float = 0.0
    log_floor_db: float = 0.0
    long_stft: float = 0.0
    long_stft_windows: tuple[int, ...] = (1024, 2048)
    neurogram: float = 0.0
    band_levels: float = 0.0
    hop_lines: float = 0.0
    hop_lines_excess: bool = False
    coherence: float = 0.0
    phase_lag: float = 0.0
    phase_lags: tuple[int, ...] = (8, 32)
    level: float = 0.0

    @property
    def uses_neurogram(self) -> bool:
        """Whether either neurogram term is on (the run computes neurograms)."""
        return self.neurogram > 0 or self.band_levels > 0


@dataclasses.dataclass(frozen=True)
class Augment:
    """Probability of each augmentation of a training crop (0: never); train/augment.py
    says what each one does."""

    eq: float = 0.0
    band_limit: float = 0.0
    mix: float = 0.0
    noise: float = 0.0
    reverb: float = 0.0
    stretch: float = 0.0
    tones: float = 0.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if not 0.0 <= getattr(self, field.name) <= 1.0:
                raise ValueError(f"augment.{field.name} must be a probability in [0, 1]")

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) > 0 for f in dataclasses.fields(self))


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a training run computes.

    Attributes:
        name: Preset name, recorded in the exported weights.
        codec: The codec being trained.
        loss: Loss weights.
        augment: Probabilities of the crop augmentations (all 0: none).
        segment: Samples per training crop (a multiple of codec.samples_per_frame).
        batch_size: Crops per step, over all processes together.
        steps: Total optimiser steps of the run.
        lr: Initial learning rate of both AdamW optimisers.
        betas: AdamW betas.
        weight_decay: AdamW weight decay (torch's default; the paper gives none).
        lr_decay: Learning-rate factor applied once per epoch.
        steps_per_epoch: Steps that count as one epoch for `lr_decay`.
        gan_start: Step at which the discriminators join (0: from the start, as published).
        grad_clip: Largest gradient norm of the generator and of the discriminators (0: no
            clipping, as published); a guard against the rare huge step.
        revive_every: Steps between re-seedings of unused codebook entries (0: never); not
            in the published recipe, which collapses without it (see train/codebook.py).
        mpd_channels: Channels of the five 2-D convolutions of each period discriminator.
        mrd_channels: Channels of the resolution discriminators (0: no MRD, a cheaper GAN).
        gain_db: Range of the random gain applied to each crop, in dB.
        silence_db: Crops quieter than this RMS (dBFS) are redrawn where possible.
        speech_share: Fraction of the crops drawn from speech clips (0: every clip in
            proportion to its length, whatever its category).
        bf16: Use bfloat16 autocast for the networks on CUDA (spectra, quantizer, output
            heads and losses stay float32).
        cpu_bf16: The same on a CPU, where it applies only if the CPU has bf16
            instructions (AVX512-BF16 or AMX; elsewhere bf16 is emulated and slow).
        seed: Seed of the initial weights and of the data order.
        log_every: Steps between log records.
        val_every: Steps between validations (0: never).
        save_every: Steps between saved states.
        val_clips: Validation clips scored at each validation.
        val_seconds: Length of each validation clip (rounded down to whole latent frames).
        teacher: Weights file of a non-causal model to distil into this causal one (''
            for none; see train/distill.py).
        freeze_encoder: Train the decoder only: the encoder and the quantizer keep the
            weights the run starts from (give --init), so the codes, and the code tables
            estimated for them, stay valid; their backward pass is saved.
        compile: Run the generator's training pass through torch.compile (see
            docs/training.md for what it measured).
    """

    name: str = "reference"
    codec: CodecConfig = get_preset("apcodec-48k")
    loss: LossWeights = LossWeights()
    augment: Augment = Augment()
    segment: int = 8000
    batch_size: int = 16
    steps: int = 1_000_000
    lr: float = 2e-4
    betas: tuple[float, float] = (0.8, 0.99)
    weight_decay: float = 0.01
    lr_decay: float = 0.999
    steps_per_epoch: int = 2500
    gan_start: int = 0
    revive_every: int = 100
    grad_clip: float = 0.0
    mpd_channels: tuple[int, ...] = (32, 128, 512, 1024, 1024)
    mrd_channels: int = 64
    gain_db: tuple[float, float] = (-20.0, 0.0)
    silence_db: float = -60.0
    speech_share: float = 0.0
    bf16: bool = True
    cpu_bf16: bool = False
    seed: int = 0
    log_every: int = 100
    val_every: int = 5000
    save_every: int = 2000
    val_clips: int = 16
    val_seconds: float = 2.0
    teacher: str = ""
    freeze_encoder: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        if self.segment % self.codec.samples_per_frame:
            raise ValueError(f"segment {self.segment} is not a multiple of "
                             f"{self.codec.samples_per_frame} samples")
        if self.mrd_channels < 0:
            raise ValueError("mrd_channels must be 0 (no MRD) or more")
        if len(self.mpd_channels) != 5:
            raise ValueError("mpd_channels must list five channel counts")
        if not 0.0 <= self.speech_share < 1.0:
            raise ValueError("speech_share must be in [0, 1)")
        if self.gain_db[0] > self.gain_db[1]:
            raise ValueError("gain_db must be (low, high)")
        if self.loss.uses_neurogram:
            from .neurogram import FRAME_S  # torch: only for a run that uses the loss

            if self.segment < round(self.codec.sample_rate * FRAME_S):
                raise ValueError(f"loss.neurogram and loss.band_levels need crops of at "
                                 f"least one {FRAME_S * 1000:g} ms frame; segment is "
                                 f"{self.segment} samples")
        if not self.loss.long_stft_windows or min(self.loss.long_stft_windows) < 16:
            raise ValueError("loss.long_stft_windows must list window sizes of 16 samples "
                             "or more")
        if not 0 <= self.seed < 1 << SEED_BITS:
            raise ValueError(f"seed must be in [0, 2**{SEED_BITS})")
        for field in ("batch_size", "steps", "steps_per_epoch", "log_every", "save_every"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field} must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready dict of every field, nested configs included."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        """Build from a (possibly partial) dict; unknown keys are an error."""
        return _build(cls, values)

    def override(self, assignments: Mapping[str, str]) -> "TrainConfig":
        """Copy with `KEY=VALUE` style changes; dotted keys reach nested configs.

        Values are parsed as JSON where possible (numbers, booleans, lists), else as strings,
        e.g. {"batch_size": "8", "codec.dim": "128", "mpd_channels": "[8,16,32,64,64]"}.
        """
        values = self.to_dict()
        for key, text in assignments.items():
            *parents, leaf = key.split(".")
            target = values
            for part in parents:
                if not isinstance(target.get(part), dict):
                    raise ValueError(f"unknown configuration key: {key}")
                target = target[part]
            if leaf not in target:
                raise ValueError(f"unknown configuration key: {key}")
            target[leaf] = _parse(text)
        return TrainConfig.from_dict(values)


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _build(cls: type, values: Mapping[str, Any]) -> Any:
    """Instantiate dataclass `cls` from a dict, recursing into nested dataclass fields."""
    if cls is CodecConfig:
        return CodecConfig.from_dict(values)
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ValueError(f"unknown configuration keys: {', '.join(unknown)}")
    return cls(**{name: _coerce(name, hints[name], value) for name, value in values.items()})


def _coerce(name: str, hint: Any, value: Any) -> Any:
    """Check `value` against the field's type; JSON lists become tuples, ints floats."""
    if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
        return _build(hint, value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, list):
        value = tuple(value)  # JSON has no tuples; the dataclass stays hashable
    kind = typing.get_origin(hint) or hint
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"configuration key {name} must be of type {hint}, got {value!r}")
    return value


#: A lighter codec of the same bitrate and bitstream for CPU training (4.5 M parameters
#: instead of 17.1 M); to move into `config.PRESETS` as "apcodec-48k-small".
SMALL_CODEC = get_preset("apcodec-48k-small")

#: Named presets. "reference" is the published recipe (meant for a GPU). "cpu" was chosen
#: by measurement on a 2-core CPU (8000-sample crops, steps/s without / with discriminators):
#: reference at batch 16: 0.34 / 0.042 (8 GB); small codec + light discriminators at batch 8:
#: 2.4 / 0.57 (1.6 GB). The MRD is most of the discriminators' cost and weighs 0.1 in the
#: loss, so it shrinks most; the discriminators join after a reconstruction-only warm-up.
#: Quality for equal compute (12 minutes on one shared core each, same data pack, from
#: scratch, 2026-11-24): small codec 349 steps, validation LSD 16.9 dB, mel L1 1.06;
#: reference codec 117 steps, LSD 21.3 dB, mel L1 2.01 (its codebooks not yet in use).
PRESETS: dict[str, TrainConfig] = {
    "reference": TrainConfig(),
    "cpu": TrainConfig(
        name="cpu", codec=SMALL_CODEC, batch_size=8, steps=200_000, gan_start=20_000,
        grad_clip=1000.0,
        mpd_channels=(16, 64, 128, 256, 256), mrd_channels=16, log_every=50,
        val_every=2000, save_every=1000, val_clips=8),
    # The streamable model, distilled from the newest full model (release apcodec-r6) and
    # started from the streamable release's weights (pass --init
    # weights/apcodec-s-r3-15e6d42560dee695.pt); `--set teacher=` trains it without.
    "stream-cpu": TrainConfig(
        name="stream-cpu", codec=get_preset("apcodec-s-48k-small"), batch_size=8,
        steps=200_000, gan_start=20_000, grad_clip=1000.0,
        mpd_channels=(16, 64, 128, 256, 256), mrd_channels=16, log_every=50,
        val_every=2000, save_every=1000, val_clips=8,
        teacher="weights/apcodec-r6-c0a206d5c539f766.pt"),
    "tiny": TrainConfig(
        name="tiny", codec=get_preset("tiny"), segment=1600, batch_size=2, steps=20,
        mpd_channels=(4, 8, 8, 8, 8), mrd_channels=4, log_every=1, val_every=0,
        save_every=10, val_clips=2, val_seconds=0.1),
}


#: "cpu-trunk": the recipe the shipped full model trains on, each change measured against the
#: `cpu` preset on this 2-core CPU (docs/training.md, "What we keep"): lr 5e-4, no GAN
#: (none of the ways of running the discriminators that fit two cores paid), the phase
#: losses weighted by amplitude, the long-window, neurogram, phase-lock (`coherence`) and
#: frame-rate line (`hop_lines`) losses, crops of 16 000 samples (batch 4: the samples of a
#: step unchanged) and a fourth long window of 8 192. Measured as the continuation of
#: trained weights (`--init`); weights for shipping come from short branches of it with a
#: decaying lr, three quarters speech and crops of 32 000 samples (release 6: `--set lr=5e-5
#: --set lr_decay=0.7 --set steps_per_epoch=500 --set steps=2000 --set speech_share=0.75
#: --set segment=32000 --set batch_size=2`).
PRESETS["cpu-trunk"] = dataclasses.replace(
    PRESETS["cpu"], name="cpu-trunk", lr=5e-4, gan_start=100_000_000, segment=16_000,
    batch_size=4,
    loss=LossWeights(phase_power=1.0, long_stft=15.0,
                     long_stft_windows=(1024, 2048, 4096, 8192),
                     neurogram=150.0, coherence=100.0, hop_lines=2000.0))


def get_train_preset(name: str) -> TrainConfig:
    """The training preset called `name`, with a helpful error listing the others."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown training preset {name!r}; "
                         f"known: {', '.join(sorted(PRESETS))}") from None
