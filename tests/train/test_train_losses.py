"""Training losses, log-mel spectrogram, discriminators and configuration: properties, CPU, fast."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from apcodec_cli.nn import spectral
from apcodec_cli.nn.config import get_preset
from apcodec_cli.nn.model import CodecOutput
from apcodec_cli.nn.quantizer import QuantizerOutput
from apcodec_cli.train import losses
from apcodec_cli.train.config import LossWeights, TrainConfig, get_train_preset
from apcodec_cli.train.discriminators import PERIODS, RESOLUTIONS, Discriminators
from apcodec_cli.train.mel import LogMel

CONFIG = get_preset("tiny")


pytestmark = pytest.mark.usefixtures("one_thread")


def _wav(batch: int = 2, samples: int = 1600, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / 48_000
    tone = 0.3 * torch.sin(2 * math.pi * 440 * t)
    return (tone + 0.05 * torch.randn(batch, 1, samples, generator=g)).float()


def test_anti_wrap_is_periodic_and_bounded() -> None:
    x = torch.linspace(-20, 20, 1001, dtype=torch.float64)
    assert torch.all(losses.anti_wrap(x) <= math.pi + 1e-12)
    assert torch.allclose(losses.anti_wrap(x + 6 * math.pi), losses.anti_wrap(x), atol=1e-9)
    assert losses.anti_wrap(torch.tensor(0.3)).item() == pytest.approx(0.3)


def test_phase_losses_zero_for_identical_and_invariant_to_2pi_shifts() -> None:
    g = torch.Generator().manual_seed(1)
    phase = (torch.rand(2, 513, 40, generator=g) * 2 - 1) * math.pi
    other = (torch.rand(2, 513, 40, generator=g) * 2 - 1) * math.pi
    assert all(v.item() == 0 for v in losses.phase_losses(phase, phase))
    shift = 2 * math.pi * torch.randint(-3, 4, phase.shape, generator=g)
    for a, b in [(phase + shift, phase), (phase, phase + shift)]:
        assert all(v.item() < 1e-5 for v in losses.phase_losses(a, b))
    base = losses.phase_losses(phase, other)
    shifted = losses.phase_losses(phase + shift, other - shift)
    for v, w in zip(base, shifted):
        assert v.item() > 1.0 and w.item() == pytest.approx(v.item(), abs=1e-4)


def test_amplitude_weighted_phase_losses_follow_the_loud_bins() -> None:
    g = torch.Generator().manual_seed(2)
    phase = (torch.rand(2, 64, 30, generator=g) * 2 - 1) * math.pi
    noise = (torch.rand(2, 64, 30, generator=g) * 2 - 1) * math.pi
    log_amp = torch.full((2, 64, 30), -9.0)
    log_amp[:, 10:14] = 0.0  # four loud bins, 8100 times (78 dB) above the rest
    assert losses.phase_weight(log_amp, 0.0) is None
    # Constant weights are the plain mean, whatever their scale.
    flat = losses.phase_losses(phase, noise, torch.full_like(phase, 3.0))
    for a, b in zip(flat, losses.phase_losses(phase, noise)):
        assert a.item() == pytest.approx(b.item(), rel=1e-5)
    # Right in the loud bins, random elsewhere: nearly zero when weighted, ~pi/2 if not.
    estimate = noise.clone()
    estimate[:, 10:14] = phase[:, 10:14]
    weight = losses.phase_weight(log_amp, 1.0)
    plain = losses.phase_losses(phase, estimate)
    weighted = losses.phase_losses(phase, estimate, weight)
    assert plain[0].item() > 1.3 and weighted[0].item() < 0.01
    assert weighted[2].item() < 0.01  # time differences within the loud bins
    # A random phase scores about pi/2 under any weights.
    assert losses.phase_losses(phase, noise, weight)[0].item() == pytest.approx(math.pi / 2,
                                                                                abs=0.25)


def test_log_floor_ignores_only_errors_below_it() -> None:
    g = torch.Generator().manual_seed(3)
    target = torch.full((2, 64, 30), -11.0)  # 20·log10(e^10) ≈ 87 dB below the peak
    target[:, 5:9] = -1.0
    target[1] -= 4.0  # the floor follows each example's own peak
    estimate = target + torch.randn(target.shape, generator=g)
    assert losses.floored(target, estimate, 0.0) == (target, estimate)
    t, e = losses.floored(target, estimate, 60.0)
    floor = target.amax(dim=(1, 2), keepdim=True) - 60 * math.log(10) / 20
    assert torch.equal(t, torch.maximum(target, floor))
    # Below the floor on both sides: no error; above it: the error is the plain one.
    quiet = (target < floor) & (estimate < floor)
    assert quiet.any() and torch.all((t - e)[quiet] == 0)
    loud = target[:, 5:9] > floor
    assert torch.equal((t - e)[:, 5:9][loud], (target - estimate)[:, 5:9][loud])
    # A quiet bin decoded loud is still an error, pushing the estimate down.
    estimate = target.clone().requires_grad_(True)
    with torch.no_grad():
        estimate[:, 20] += 9.0
    loss = torch.nn.functional.mse_loss(*losses.floored(target, estimate, 60.0))
    loss.backward()
    assert loss.item() > 0 and torch.all(estimate.grad[:, 20] > 0)
    assert torch.all(estimate.grad[:, 21:] == 0)


def test_consistency_zero_for_a_real_stft_only() -> None:
    spec = spectral.stft(_wav(), CONFIG)
    assert losses.consistency_loss(spec, CONFIG).item() < 1e-9
    noise = torch.polar(spec.abs(), torch.rand(spec.shape) * 2 * math.pi)
    assert losses.consistency_loss(noise, CONFIG).item() > 1e-3


def _perfect_reconstruction(samples: int = 1600
                            ) -> tuple[CodecOutput, losses.Targets, torch.Tensor]:
    """A codec output equal to its target (no quantizer losses), the target, and the
    log-mel spectrogram of both."""
    wav = _wav(samples=samples)
    log_amp, phase = spectral.analyse(wav, CONFIG)
    mel = LogMel(48_000)(wav)
    zero = torch.zeros(())
    out = CodecOutput(log_amp, phase, wav, QuantizerOutput(None, None, None, zero, zero))
    return out, losses.Targets(log_amp, phase, spectral.stft(wav, CONFIG), mel), mel


def test_perfect_reconstruction_scores_zero_spectral_losses() -> None:
    out, target, mel = _perfect_reconstruction()
    zero = torch.zeros(())
    terms = dict(losses.generator_loss(out, target, mel, zero, zero, CONFIG,
                                       LossWeights()).items())
    for name in ("amplitude", "phase_ip", "phase_gd", "phase_ptd", "mel_l1", "mel_l2"):
        assert terms[name].item() == 0, name
    for name in ("consistency", "real", "imag"):
        assert terms[name].item() < 2e-5, name  # only the 1e-5 log floor remains
    assert terms["total"].item() < 1e-3


def test_log_mel_frames_like_the_stft() -> None:
    assert LogMel(48_000)(_wav()).shape == (2, 80, 1600 // 40 + 1)


def test_hinge_losses_vanish_beyond_the_margins() -> None:
    real, fake = [torch.full((2, 5), 1.5)], [torch.full((2, 5), -1.0)]
    assert losses.discriminator_hinge(real, fake).item() == 0
    assert losses.generator_hinge([torch.full((2, 5), 1.0)]).item() == 0
    assert losses.discriminator_hinge(fake, real).item() == pytest.approx(2.0 + 2.5)


def test_discriminators_shapes_and_batch_split() -> None:
    torch.manual_seed(0)
    disc = Discriminators((4, 8, 8, 8, 8), 4)
    a, b = _wav(seed=1), _wav(seed=2)
    mpd, mrd = disc(torch.cat([a, b]))
    assert len(mpd.logits) == len(PERIODS) and len(mrd.logits) == len(RESOLUTIONS)
    assert all(x.shape[0] == 4 and x.ndim == 2 for x in mpd.logits + mrd.logits)
    assert all(len(maps) == 6 for maps in mpd.features + mrd.features)
    alone, _ = disc(a)
    first, _ = mpd.halves()
    for x, y in zip(first.logits + sum(first.features, []), alone.logits + sum(alone.features, [])):
        assert torch.allclose(x, y, atol=1e-5)
    assert losses.feature_matching(first, alone).item() < 1e-5


def test_config_round_trip_overrides_and_unknown_keys() -> None:
    ref = get_train_preset("reference")
    assert TrainConfig.from_dict(ref.to_dict()) == ref
    assert ref.codec == get_preset("apcodec-48k") and ref.segment == 8000
    changed = ref.override({"codec.dim": "128", "mpd_channels": "[1,2,3,4,5]", "lr": "1"})
    assert changed.codec.dim == 128 and changed.mpd_channels == (1, 2, 3, 4, 5)
    assert changed.lr == 1.0
    for bad in ({"nope": "1"}, {"codec.nope": "1"}, {"batch_size": "x"}, {"segment": "8001"}):
        with pytest.raises(ValueError):
            ref.override(bad)
    with pytest.raises(ValueError, match="known"):
        get_train_preset("nope")


def test_long_stft_loss_sees_a_detuned_tone_that_the_codec_window_blurs() -> None:
    t = torch.arange(8000) / 48_000
    tone = (0.3 * torch.sin(2 * math.pi * 440 * t)).view(1, 1, -1)
    detuned = (0.3 * torch.sin(2 * math.pi * 470 * t)).view(1, 1, -1)
    assert losses.long_stft_loss(tone, tone).item() == 0
    log_mel = LogMel(48_000)
    mel_gap = (log_mel(detuned) - log_mel(tone)).abs().mean().item()
    long_gap = losses.long_stft_loss(tone, detuned).item()
    assert long_gap > 2 * mel_gap  # 30 Hz is a fifth of a 150 Hz codec bin
    # Silence decoded as silence: the floor keeps the loss and its gradient finite.
    silence = torch.zeros(1, 1, 8000, requires_grad=True)
    loss = losses.long_stft_loss(torch.zeros(1, 1, 8000), silence)
    loss.backward()
    assert loss.item() == 0 and torch.isfinite(silence.grad).all()


def test_long_stft_windows_are_a_configuration_key() -> None:
    t = torch.arange(8000) / 48_000
    tone = (0.3 * torch.sin(2 * math.pi * 440 * t)).view(1, 1, -1)
    detuned = (0.3 * torch.sin(2 * math.pi * 452 * t)).view(1, 1, -1)
    each = [losses.long_stft_loss(tone, detuned, (size,)).item() for size in (1024, 2048, 4096)]
    assert len(set(each)) == 3  # each window sees the pair differently
    assert losses.long_stft_loss(tone, detuned).item() == pytest.approx((each[0] + each[1]) / 2)
    config = get_train_preset("cpu").override({"loss.long_stft_windows": "[1024, 4096]"})
    assert config.loss.long_stft_windows == (1024, 4096)
    for bad in ("[]", "[8]"):
        with pytest.raises(ValueError, match="long_stft_windows"):
            get_train_preset("cpu").override({"loss.long_stft_windows": bad})
    # A run saved before the key existed resumes with the windows it trained with.
    saved = get_train_preset("cpu").to_dict()
    del saved["loss"]["long_stft_windows"]
    assert TrainConfig.from_dict(saved).loss.long_stft_windows == (1024, 2048)


def test_long_stft_weight_adds_its_term_to_the_total() -> None:
    out, target, mel = _perfect_reconstruction()
    zero = torch.zeros(())
    term = torch.tensor(0.5)
    plain = losses.generator_loss(out, target, mel, zero, zero, CONFIG, LossWeights())
    extra = losses.generator_loss(out, target, mel, zero, zero, CONFIG,
                                  LossWeights(long_stft=4.0), long_stft=term)
    assert plain.long_stft.item() == 0 and extra.long_stft.item() == 0.5
    assert extra.total.item() == pytest.approx(plain.total.item() + 2.0, abs=1e-4)


def test_hop_line_loss_sees_a_buzz_at_the_frame_rate_and_not_noise() -> None:
    wav = _wav(batch=2, samples=8000)
    assert losses.hop_line_loss(wav, wav, 40).item() == 0
    g = torch.Generator().manual_seed(5)
    cycle = 0.03 * torch.randn(40, generator=g)
    buzzed = wav + cycle.repeat(200).view(1, 1, -1)  # the same 40 samples in every hop
    noisy = wav + 0.03 * torch.randn(wav.shape, generator=g)  # as loud, not periodic
    buzz, noise = losses.hop_line_loss(wav, buzzed, 40), losses.hop_line_loss(wav, noisy, 40)
    assert buzz.item() > 100 * noise.item()
    # A share of each crop's power: the same at any level.
    assert losses.hop_line_loss(10 * wav, 10 * buzzed, 40).item() == pytest.approx(buzz.item(),
                                                                                  rel=1e-4)
    decoded = buzzed.clone().requires_grad_()
    losses.hop_line_loss(wav, decoded, 40).backward()
    assert torch.isfinite(decoded.grad).all() and decoded.grad.abs().sum() > 0


def test_hop_line_excess_costs_louder_lines_and_not_their_phase() -> None:
    wav = _wav(batch=2, samples=8000)
    assert losses.hop_line_loss(wav, wav, 40, excess_only=True).item() == 0
    g = torch.Generator().manual_seed(6)
    cycle = 0.03 * torch.randn(40, generator=g)
    buzzed = wav + cycle.repeat(200).view(1, 1, -1)
    excess = losses.hop_line_loss(wav, buzzed, 40, excess_only=True)
    # Over a source with no lines to speak of, both forms read the buzz's share of power.
    assert excess.item() == pytest.approx(losses.hop_line_loss(wav, buzzed, 40).item(),
                                          rel=0.05)
    # The same lines with another phase: the excess form is content, the other is not.
    turned = wav + cycle.roll(10).repeat(200).view(1, 1, -1)
    assert losses.hop_line_loss(buzzed, turned, 40, excess_only=True).item() < 1e-2 * \
        losses.hop_line_loss(buzzed, turned, 40).item()
    decoded = buzzed.clone().requires_grad_()
    losses.hop_line_loss(wav, decoded, 40, excess_only=True).backward()
    assert torch.isfinite(decoded.grad).all() and decoded.grad.abs().sum() > 0


def test_coherence_loss_costs_a_phase_locked_to_the_code_pattern_and_not_a_free_one() -> None:
    g = torch.Generator().manual_seed(3)
    frames = 2 * losses.COHERENCE_FRAMES + 10  # two whole windows; the rest is left out
    amplitude = torch.rand(2, 6, frames, generator=g) + 0.5
    start = torch.rand(2, 6, 1, generator=g) * 6
    t = torch.arange(frames)

    def turning(rate: float) -> torch.Tensor:
        return torch.polar(amplitude, start + rate * t)

    true = turning(0.6)  # 0.6 rad a frame: no multiple of 2 pi / 8
    shuffled = torch.polar(amplitude, torch.rand(2, 6, frames, generator=g) * 6.3)
    assert losses.coherence_loss(true, true, 8).item() == 0
    for j in (0, 3):  # standing (a 1.2 kHz line), or locked to 3/8 of a turn (150 Hz grid)
        locked = turning(2 * math.pi * j / 8)
        assert losses.coherence_loss(true, locked, 8).item() > 0.8
        # Only the excess costs: a true locked phasor decoded free costs only the free
        # one's leakage into the neighbouring rates.
        assert losses.coherence_loss(locked, true, 8).item() < 0.2
    assert losses.coherence_loss(true, shuffled, 8).item() < 0.2  # random: a little (chance)
    phase = (start + 0 * t).clone().requires_grad_()
    losses.coherence_loss(true, torch.polar(amplitude, phase), 8).backward()
    assert torch.isfinite(phase.grad).all() and phase.grad.abs().sum() > 0


def test_coherence_weight_adds_its_term_to_the_total() -> None:
    out, target, mel = _perfect_reconstruction(samples=8000)  # 200 frames: three windows
    zero = torch.zeros(())
    on = losses.generator_loss(out, target, mel, zero, zero, CONFIG, LossWeights(coherence=300))
    assert on.coherence.item() == pytest.approx(0, abs=1e-3)  # decoded as true: no excess
    off = losses.generator_loss(out, target, mel, zero, zero, CONFIG, LossWeights())
    assert off.coherence.item() == 0
    # The phase held standing: an excess, added to the total at its weight.
    standing = dataclasses.replace(out, phase=out.phase[..., :1].expand_as(out.phase))
    plain = losses.generator_loss(standing, target, mel, zero, zero, CONFIG, LossWeights())
    weighted = losses.generator_loss(standing, target, mel, zero, zero, CONFIG,
                                     LossWeights(coherence=300))
    assert weighted.coherence.item() > 0.1
    assert weighted.total.item() == pytest.approx(
        plain.total.item() + 300 * weighted.coherence.item(), rel=1e-5)


def test_phase_lag_loss_sees_a_frequency_error_that_one_frame_hides() -> None:
    """A decoded frequency slightly off adds the same small error every frame: the
    one-frame difference (L_PTD) barely sees it, the loss over 32 frames sees it 32 times
    larger; a copy costs nothing, a constant offset costs nothing (only advances count),
    lags longer than the spectra are skipped, and the term enters the total at its weight."""
    frames, bins = 100, 9
    g = torch.Generator().manual_seed(0)
    true = (torch.rand(2, bins, frames, generator=g) * 2 - 1) * math.pi
    drift = true + 0.02 * torch.arange(frames)  # 0.02 rad per frame: a small frequency error
    assert losses.phase_lag_loss(true, true, None, (8, 32)).item() == pytest.approx(0, abs=1e-6)
    assert losses.phase_lag_loss(true, true + 1.0, None, (8, 32)).item() == pytest.approx(
        0, abs=1e-5)
    ptd = losses.phase_losses(true, drift)[2].item()
    assert ptd == pytest.approx(0.02, rel=1e-3)
    assert losses.phase_lag_loss(true, drift, None, (32,)).item() == pytest.approx(0.64, rel=1e-3)
    weight = torch.rand(2, bins, frames, generator=g) + 0.1
    assert losses.phase_lag_loss(true, drift, weight, (32,)).item() == pytest.approx(0.64, rel=1e-3)
    assert losses.phase_lag_loss(true, drift, None, (8, 1000)).item() == pytest.approx(
        0.16, rel=1e-3)
    assert losses.phase_lag_loss(true, drift, None, (1000,)).item() == 0
    out, target, mel = _perfect_reconstruction(samples=8000)
    zero = torch.zeros(())
    shifted = dataclasses.replace(out, phase=out.phase + 0.02 * torch.arange(out.phase.shape[-1]))
    plain = losses.generator_loss(shifted, target, mel, zero, zero, CONFIG, LossWeights())
    assert plain.phase_lag.item() == 0
    weighted = losses.generator_loss(shifted, target, mel, zero, zero, CONFIG,
                                     LossWeights(phase_lag=50))
    assert weighted.phase_lag.item() > 0.1
    assert weighted.total.item() == pytest.approx(
        plain.total.item() + 50 * weighted.phase_lag.item(), rel=1e-5)


def test_level_loss_reads_each_band_s_energy_over_the_crop() -> None:
    """0 for the true spectrum; a decoded spectrum 2 dB louder everywhere reads 2 dB, one
    louder in one band reads that band's share; a band far below the loudest does not count;
    the phase and the spread of energy over frames within a band do not matter."""
    g = torch.Generator().manual_seed(0)
    spec = torch.randn(2, 513, 40, dtype=torch.complex64, generator=g)
    assert losses.level_loss(spec, spec).item() == pytest.approx(0, abs=1e-5)
    louder = spec * 10 ** (2 / 20)
    assert losses.level_loss(spec, louder).item() == pytest.approx(2, rel=1e-4)
    turned = spec * torch.exp(1j * torch.rand(spec.shape, generator=g))
    assert losses.level_loss(spec, turned).item() == pytest.approx(0, abs=1e-4)
    moved = spec.clone()
    moved[..., :20] *= math.sqrt(1.5)
    moved[..., 20:] *= math.sqrt(0.5)  # each bin's energy over the crop is unchanged
    assert losses.level_loss(spec, moved).item() == pytest.approx(0, abs=0.3)
    top = spec.clone()
    top[:, 400:] *= 10 ** (6 / 20)  # the last band starts below bin 400: part of it
    part = losses.level_loss(spec, top).item()
    assert 0 < part < 6
    quiet = spec.clone()
    quiet[:, 400:] *= 1e-5  # 100 dB down: that band no longer counts
    assert losses.level_loss(quiet, quiet * 2).item() == pytest.approx(20 * math.log10(2), rel=1e-4)
    decoded = spec.clone().requires_grad_(True)
    losses.level_loss(spec, decoded * 2).backward()
    assert decoded.grad is not None and decoded.grad.abs().sum() > 0


def test_level_loss_joins_the_total_when_weighted() -> None:
    out, target, mel = _perfect_reconstruction(samples=8000)
    zero = torch.zeros(())
    louder = dataclasses.replace(out, log_amp=out.log_amp + 0.3)
    plain = losses.generator_loss(louder, target, mel, zero, zero, CONFIG, LossWeights())
    assert plain.level.item() == 0
    weighted = losses.generator_loss(louder, target, mel, zero, zero, CONFIG, LossWeights(level=5))
    assert weighted.level.item() == pytest.approx(20 * 0.3 / math.log(10), rel=1e-3)
    assert weighted.total.item() == pytest.approx(
        plain.total.item() + 5 * weighted.level.item(), rel=1e-5)
