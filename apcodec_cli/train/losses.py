"""Losses of the APCodec recipe: spectra, phase, consistency, mel, adversarial.

Spectra are (B, n_bins, F) float32 tensors, waveforms (B, 1, T). Every function returns a
scalar tensor; `generator_loss` combines them with the published weights into `GeneratorLosses`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

from ..nn import spectral
from ..nn.config import CodecConfig
from ..nn.model import CodecOutput
from .config import LossWeights
from .discriminators import DiscriminatorOutput


def anti_wrap(x: torch.Tensor) -> torch.Tensor:
    """|x - 2π·round(x / 2π)|: the distance of a phase error from the nearest multiple of 2π."""
    return torch.abs(x - 2 * math.pi * torch.round(x / (2 * math.pi)))


def phase_losses(phase: torch.Tensor, phase_hat: torch.Tensor,
                 weight: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Anti-wrapped instantaneous-phase, group-delay and phase-time-difference losses.

    Args:
        phase, phase_hat: (B, n_bins, F) true and decoded phase spectra.
        weight: (B, n_bins, F) non-negative weight of each bin's error, or None for the
            published plain mean. Each example's weights are scaled to mean 1 (a difference
            between two bins weighs the geometric mean of theirs), so a loss keeps the
            scale of a mean error: pi/2 for a random phase whatever the weights.

    Returns:
        (L_IP, L_GD, L_PTD): mean anti-wrapped error of the phase itself, of its difference
        between adjacent frequency bins, and of its difference between adjacent frames.
    """
    error = phase - phase_hat
    ip = anti_wrap(error)
    gd = anti_wrap(torch.diff(error, dim=1))
    ptd = anti_wrap(torch.diff(error, dim=2))
    if weight is None:
        return ip.mean(), gd.mean(), ptd.mean()
    pair_f = torch.sqrt(weight[:, 1:] * weight[:, :-1])
    pair_t = torch.sqrt(weight[..., 1:] * weight[..., :-1])
    return ((ip * _unit_mean(weight)).mean(), (gd * _unit_mean(pair_f)).mean(),
            (ptd * _unit_mean(pair_t)).mean())


def phase_lag_loss(phase: torch.Tensor, phase_hat: torch.Tensor,
                   weight: torch.Tensor | None, lags: Sequence[int]) -> torch.Tensor:
    """Anti-wrapped error of the phase's advance over `lags` frames, the mean over lags (a
    lag no shorter than the spectra is skipped; 0 when none is left). Weighted like
    `phase_losses`' L_PTD, which is this loss at lag 1.

    A bin's phase advance over L frames is 2π·f·L·hop / rate: a decoded frequency 5 Hz off
    misses it by 0.026 rad over one 40-sample hop, invisible beside the other errors, and by
    0.84 rad over 32 hops (27 ms): a loss over longer lags sees the frequency of each bin's
    content, not only its frame-to-frame jitter. It was aimed at the spread of the decoded
    long-term fine structure (`artefacts.peak_spread`) and did not narrow it in a branch of
    2 000 steps (docs/training.md, "Tried and not kept"). Off by default
    (`LossWeights.phase_lag`)."""
    error = phase - phase_hat
    terms = []
    for lag in lags:
        if lag >= error.shape[-1]:
            continue
        advance = anti_wrap(error[..., lag:] - error[..., :-lag])
        if weight is None:
            terms.append(advance.mean())
        else:
            pair = torch.sqrt(weight[..., lag:] * weight[..., :-lag])
            terms.append((advance * _unit_mean(pair)).mean())
    return torch.stack(terms).mean() if terms else torch.zeros((), device=phase.device)


LEVEL_BANDS = 12  # log-spaced bands of `level_loss`, from the first bin above 0 Hz to Nyquist
LEVEL_FLOOR_DB = 60.0  # a band this far below the crop's loudest band does not count


def level_loss(spec: torch.Tensor, spec_hat: torch.Tensor, bands: int = LEVEL_BANDS,
               floor_db: float = LEVEL_FLOOR_DB) -> torch.Tensor:
    """Mean absolute error in dB of the decoded energy of each crop in `bands` log-spaced
    frequency bands, over the true energy there: `spec` and `spec_hat` (B, n_bins, F)
    complex. Bands more than `floor_db` below the crop's loudest true band do not count.

    The log-amplitude and log-mel losses match each bin's or band's level frame by frame in
    the log domain, which puts an uncertain bin at its geometric mean, below its mean
    energy by an amount that depends on the content: the decoded level then strays by
    recording (held-out speech, release 6: a spread of 1.9 dB from clip to clip). This
    term matches the energy of a whole crop, as the level a listener and `level_db` read.
    In a branch of 2 000 steps at weight 20 it narrowed that spread on the training
    packages and widened it on held-out ones (docs/training.md, "Tried and not kept").
    Off by default (`LossWeights.level`)."""
    n_bins = spec.shape[1]
    edges = torch.unique(torch.round(torch.logspace(0, math.log10(n_bins), bands + 1)).long())
    true, decoded = (x.abs().square().sum(dim=-1) for x in (spec.detach(), spec_hat))
    sums = [torch.stack([x[:, lo:hi].sum(dim=1) for lo, hi in zip(edges[:-1], edges[1:])], 1)
            for x in (true, decoded)]  # (B, bands)
    eps = 1e-10
    error = 10 * torch.log10((sums[1] + eps) / (sums[0] + eps))
    counted = sums[0] > sums[0].amax(dim=1, keepdim=True) * 10 ** (-floor_db / 10)
    return (error.abs() * counted).sum() / counted.sum().clamp_min(1)


def _unit_mean(weight: torch.Tensor) -> torch.Tensor:
    """`weight` (B, ...) scaled so each example's weights average 1."""
    dims = tuple(range(1, weight.dim()))
    return weight / weight.mean(dim=dims, keepdim=True).clamp_min(1e-12)


def phase_weight(log_amp: torch.Tensor, power: float) -> torch.Tensor | None:
    """Weights of the phase losses from the true log-amplitude: |X|**power (None for 0,
    the published uniform weighting). With power 1 a bin's phase error counts as much as
    the complex-spectrum error it causes (|X|·|e^{j·d} - 1| ~ |X|·|d|), so the loud bins
    whose phase is heard lead, instead of the many quiet bins whose phase is noise."""
    return None if power == 0 else torch.exp(power * log_amp.detach())


def consistency_loss(spec_hat: torch.Tensor, config: CodecConfig) -> torch.Tensor:
    """Mean squared distance between a decoded spectrum and the STFT of its own iSTFT.

    Zero exactly when `spec_hat` (B, n_bins, F) complex is the STFT of some waveform. A
    causal model's last code frame is left out: its samples wait for frames after the crop.
    """
    respec = spectral.stft(spectral.istft(spec_hat, config), config)
    keep = spec_hat.shape[-1] - (config.downsample if config.causal else 0)
    return (respec - spec_hat)[..., :keep].abs().square().mean()


COHERENCE_FRAMES = 64  # STFT frames (53 ms at a 40-sample hop) over which coherence is taken
COHERENCE_MARGIN = 0.1  # excess coherence that is free: about the spread of a random phase's


def coherence(spec: torch.Tensor, period: int, frames: int = COHERENCE_FRAMES
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """How steadily each bin's phasor turns at each of the rates a pattern of `period`
    frames can hold: (B, n_bins, W, period) |sum over a window of S_t e^(-2 pi i j t /
    period)| / sum of |S_t| for j = 0 .. period - 1, over W windows of `frames` STFT frames
    (a multiple of `period`; a partial last window is left out), and the (B, n_bins, W)
    sums of |S| that weigh them.

    1 for a phasor that turns by exactly 2 pi j / period every frame, near 0 for one that
    turns at another pace or at random. The decoder works in patterns of `downsample` (8)
    frames, one per code; release 2 locked every bin's turn to the nearest multiple of
    2 pi / 8 per frame (coherence 0.46-0.80 where the source's is 0.28-0.30, on 4 + 4
    held-out clips), which snaps its frequency to a multiple of the code frame rate, 150 Hz:
    lines at those multiples, the strongest at multiples of the STFT frame rate (1.2 kHz,
    j = 0), where the phase stands still."""
    usable = spec.shape[-1] // frames * frames
    windows = spec[..., :usable].unflatten(-1, (-1, frames))
    mass = windows.abs().sum(-1)
    phases = windows.unflatten(-1, (-1, period)).sum(-2)  # frames t = period * q + r, by r
    turns = torch.fft.fft(phases, dim=-1).abs()  # j-th: sum over t of S_t e^(-2 pi i j t / P)
    return turns / (mass.unsqueeze(-1) + 1e-7), mass


def coherence_loss(spec: torch.Tensor, spec_hat: torch.Tensor, period: int,
                   frames: int = COHERENCE_FRAMES) -> torch.Tensor:
    """Excess coherence (`coherence`) of the decoded complex spectrum over the true one's,
    summed over the `period` turning rates, each bin and window weighed by its true
    amplitude mass; in float32.

    Only the excess beyond `COHERENCE_MARGIN` costs: a phase that keeps to one of the
    pattern's rates where the true one wanders. Without the margin, the chance ups and downs
    of the estimates (about 0.1 for a random phase over 64 frames, at each of 8 rates)
    would cost too, and the loss would ask for a phase more random than the source's.
    Penalising the standing phase alone (j = 0) took the 1.2 kHz lines away but moved their
    energy to the neighbouring multiples of 150 Hz (`python scripts/standing_phase.py`,
    docs/training.md)."""
    if spec.shape[-1] < frames:  # no whole window: nothing to measure
        return spec_hat.real.float().sum() * 0
    true, mass = coherence(spec.detach().to(torch.complex64), period, frames)
    decoded, _ = coherence(spec_hat.to(torch.complex64), period, frames)
    excess = F.relu(decoded - true - COHERENCE_MARGIN).sum(-1)
    return (excess * mass).sum() / mass.sum().clamp(min=1e-7)


def floored(target: torch.Tensor, estimate: torch.Tensor, floor_db: float
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Two natural-log magnitude spectra (B, ...) raised to a floor `floor_db` below each
    example's loudest true bin (unchanged for 0, the published losses).

    An estimate below the floor where the truth is too costs nothing; a quiet bin decoded
    loud still does. Much of a log-spectral loss comes from far below the peak (on training
    crops, the weights of 2026-12-05: log-amplitude loss 0.74, 0.31 with a 70 dB floor),
    but those bins are not inaudible to the metrics: trained with a 70 dB floor, music
    ViSQOL fell by 0.07 and the log-mel distance rose on 15 of 16 clips
    (docs/training.md, "Tried and not kept"). Off by default."""
    if floor_db <= 0:
        return target, estimate
    dims = tuple(range(1, target.dim()))
    floor = target.detach().amax(dim=dims, keepdim=True) - floor_db * math.log(10) / 20
    return torch.maximum(target, floor), torch.maximum(estimate, floor)


def long_stft_loss(wav: torch.Tensor, wav_hat: torch.Tensor,
                   windows: Sequence[int] = LossWeights.long_stft_windows) -> torch.Tensor:
    """L1 distance of log magnitudes (floored at 1e-5) of two (B, 1, T) waveforms, averaged
    over Hann windows of `windows` samples (FFT size = window, hop a quarter of it; by
    default 21 and 43 ms), in float32.

    Every other spectral term sees the signal through the codec's own 320-sample window
    (150 Hz wide bins): nothing in the published losses can tell a harmonic 40 Hz off or
    smeared across its neighbours. This one resolves 47 and 23 Hz. Off by default
    (`LossWeights.long_stft`)."""
    total = torch.zeros((), device=wav.device)
    with torch.autocast(wav.device.type, enabled=False):
        for size in windows:
            hop = size // 4
            window = torch.hann_window(size, device=wav.device)
            logs = []
            for x in (wav, wav_hat):
                spec = torch.stft(x.float().reshape(-1, x.shape[-1]), size, hop, size,
                                  window=window, center=True, pad_mode="constant",
                                  return_complex=True)
                # log |X| floored, with a gradient that stays finite at |X| = 0
                logs.append(0.5 * torch.log((spec.real.square() + spec.imag.square())
                                            .clamp(min=1e-10)))
            total = total + F.l1_loss(logs[1], logs[0])
    return total / len(windows)


#: `hop_line_loss(excess_only=True)` lets each decoded line hold up to this many times the
#: true line's power (1 dB) before it is penalised.
HOP_EXCESS_MARGIN = 10 ** 0.1


def hop_line_loss(wav: torch.Tensor, wav_hat: torch.Tensor, hop: int,
                  excess_only: bool = False) -> torch.Tensor:
    """Error of the decoded (B, 1, T) waveform's component of period `hop` samples, as a
    share of each true crop's power (mean over crops), in float32.

    Whatever the decoder repeats identically in every STFT frame leaves the inverse STFT as
    a signal of period one hop: lines at multiples of the frame rate (1.2 kHz for a 40-sample
    hop at 48 kHz). The component is the crop folded at that period and averaged (its mean
    removed); in the weights shipped on 2026-12-06 (network `ca236ba8a4d963bb`) it held 4 to
    140 times the source's share of the power (8 validation clips), most in quiet passages,
    a buzz no other term singles out: it is a few bins of each spectrum. Against a twin
    branch without it, it takes 1.3-1.8 dB off the line peaks out of source at no cost in
    PESQ-WB (docs/training.md, "What we keep"); on in the `cpu-trunk` preset
    (`LossWeights.hop_lines`).

    With `excess_only`, only what each of the component's harmonics (the lines) holds
    beyond the true crop's power in it, plus HOP_EXCESS_MARGIN, is penalised: its phase and
    any line the source has are left to the other terms (`LossWeights.hop_lines_excess`)."""
    with torch.autocast(wav.device.type, enabled=False):
        length = wav.shape[-1] // hop * hop

        def periodic(x: torch.Tensor) -> torch.Tensor:
            folded = x.float().reshape(x.shape[0], -1)[:, :length].reshape(x.shape[0], -1, hop)
            cycle = folded.mean(dim=1)
            return cycle - cycle.mean(dim=-1, keepdim=True)

        power = wav.detach().float().square().mean(dim=(1, 2)).clamp(min=1e-8)
        if excess_only:
            # (B, hop // 2 + 1) power of each harmonic, scaled so that they sum to the
            # component's mean square (Parseval, one-sided)
            def lines(x: torch.Tensor) -> torch.Tensor:
                return torch.fft.rfft(periodic(x), dim=-1).abs().square() * (2 / hop ** 2)
            excess = F.relu(lines(wav_hat) - HOP_EXCESS_MARGIN * lines(wav).detach())
            return (excess.sum(dim=-1) / power).mean()
        error = (periodic(wav_hat) - periodic(wav)).square().mean(dim=-1)
        return (error / power).mean()


def mel_losses(mel: torch.Tensor, mel_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(L1, MSE) between two log-mel spectrograms."""
    return F.l1_loss(mel_hat, mel), F.mse_loss(mel_hat, mel)


def discriminator_hinge(real: Sequence[torch.Tensor], fake: Sequence[torch.Tensor]) -> torch.Tensor:
    """Hinge loss of one discriminator family, summed over its sub-discriminators."""
    return sum(F.relu(1 - r.float()).mean() + F.relu(1 + f.float()).mean()
               for r, f in zip(real, fake))


def generator_hinge(fake: Sequence[torch.Tensor]) -> torch.Tensor:
    """Adversarial hinge loss of the generator, summed over sub-discriminators."""
    return sum(F.relu(1 - f.float()).mean() for f in fake)


def feature_matching(real: DiscriminatorOutput, fake: DiscriminatorOutput) -> torch.Tensor:
    """L1 between the feature maps of real and decoded audio, summed over all layers."""
    return sum(F.l1_loss(f.float(), r.detach().float())
               for r_maps, f_maps in zip(real.features, fake.features)
               for r, f in zip(r_maps, f_maps))


@dataclasses.dataclass
class GeneratorLosses:
    """Named terms of the generator loss (scalars); `total` is what is minimised."""

    total: torch.Tensor
    amplitude: torch.Tensor
    phase_ip: torch.Tensor
    phase_gd: torch.Tensor
    phase_ptd: torch.Tensor
    consistency: torch.Tensor
    real: torch.Tensor
    imag: torch.Tensor
    mel_l1: torch.Tensor
    mel_l2: torch.Tensor
    codebook: torch.Tensor
    commitment: torch.Tensor
    adversarial: torch.Tensor
    feature: torch.Tensor
    distill: torch.Tensor
    long_stft: torch.Tensor
    neurogram: torch.Tensor
    band_levels: torch.Tensor
    hop_lines: torch.Tensor
    coherence: torch.Tensor
    phase_lag: torch.Tensor
    level: torch.Tensor

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        """(name, value) pairs of every term, `total` first."""
        for field in dataclasses.fields(self):
            yield field.name, getattr(self, field.name)


@dataclasses.dataclass
class Targets:
    """Spectra of the true waveform the generator is scored against, float32.

    Attributes:
        log_amp: (B, n_bins, F) log-amplitude.
        phase: (B, n_bins, F) wrapped phase.
        spec: (B, n_bins, F) complex STFT.
        mel: (B, n_mels, frames) log-mel spectrogram.
    """

    log_amp: torch.Tensor
    phase: torch.Tensor
    spec: torch.Tensor
    mel: torch.Tensor


def generator_loss(out: CodecOutput, target: Targets, mel_hat: torch.Tensor,
                   adversarial: torch.Tensor, feature: torch.Tensor,
                   config: CodecConfig, weights: LossWeights,
                   distill: torch.Tensor | None = None,
                   long_stft: torch.Tensor | None = None,
                   neurogram: torch.Tensor | None = None,
                   hop_lines: torch.Tensor | None = None,
                   band_levels: torch.Tensor | None = None) -> GeneratorLosses:
    """Weighted sum of every generator term (adversarial terms already MPD + w·MRD;
    `distill` already weighted, see train/distill.py; `long_stft`, `neurogram`,
    `hop_lines` and `band_levels` the unweighted `long_stft_loss`, the two terms of
    `neurogram.neurogram_losses` and `hop_line_loss`, None when weighted 0)."""
    zero = torch.zeros_like(adversarial)
    distill = zero if distill is None else distill
    long_stft = zero if long_stft is None else long_stft
    neurogram = zero if neurogram is None else neurogram
    hop_lines = zero if hop_lines is None else hop_lines
    band_levels = zero if band_levels is None else band_levels
    spec_hat = spectral.spectrum(out.log_amp.float(), out.phase.float())
    weight = phase_weight(target.log_amp, weights.phase_power)
    ip, gd, ptd = phase_losses(target.phase, out.phase.float(), weight)
    phase_lag = (phase_lag_loss(target.phase, out.phase.float(), weight, weights.phase_lags)
                 if weights.phase_lag > 0 else torch.zeros_like(ip))
    level = (level_loss(target.spec, spec_hat) if weights.level > 0
             else torch.zeros_like(ip))
    amplitude = F.mse_loss(*floored(target.log_amp, out.log_amp.float(), weights.log_floor_db))
    consistency = consistency_loss(spec_hat, config)
    phase_coherence = (coherence_loss(target.spec, spec_hat, config.downsample)
                       if weights.coherence > 0
                       else torch.zeros_like(consistency))
    real = F.l1_loss(spec_hat.real, target.spec.real)
    imag = F.l1_loss(spec_hat.imag, target.spec.imag)
    mel_l1, mel_l2 = mel_losses(*floored(target.mel, mel_hat, weights.log_floor_db))
    q = out.quantized
    w = weights
    total = (w.amplitude * amplitude + w.phase * (ip + gd + ptd)
             + w.spectral * (consistency + w.real_imag * (real + imag))
             + adversarial + feature + w.mel * (mel_l1 + mel_l2)
             + w.codebook * q.codebook_loss + w.commitment * q.commitment_loss + distill
             + w.long_stft * long_stft + w.neurogram * neurogram + w.hop_lines * hop_lines
             + w.band_levels * band_levels + w.coherence * phase_coherence
             + w.phase_lag * phase_lag + w.level * level)
    return GeneratorLosses(total, amplitude, ip, gd, ptd, consistency, real, imag, mel_l1,
                           mel_l2, q.codebook_loss, q.commitment_loss, adversarial, feature,
                           distill, long_stft, neurogram, band_levels, hop_lines,
                           phase_coherence, phase_lag, level)
