"""Crop augmentation: each kind does what it says, and batches stay a function of the step."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from apcodec_cli.train.augment import AUG_DRAWS, augment
from apcodec_cli.train.config import Augment, get_train_preset
from apcodec_cli.train.crops import CropPlanner

RATE, S = 48_000, 8000


def _draws(batch: int, **fixed: float) -> torch.Tensor:
    """Uniforms with chosen entries: fixed={'g1': 0.0} sets column 1 for every crop."""
    u = torch.rand(batch, AUG_DRAWS, generator=torch.Generator().manual_seed(0))
    for key, value in fixed.items():
        u[:, int(key[1:])] = value
    return u


def _band_energy(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    spectrum = torch.fft.rfft(x).abs().square()
    freqs = torch.fft.rfftfreq(x.shape[-1], 1 / RATE)
    return spectrum[..., (freqs >= low) & (freqs < high)].sum(-1)


def test_nothing_changes_without_augmentation() -> None:
    x = torch.randn(4, S)
    assert torch.equal(augment(x, _draws(4), Augment()), x)


def test_band_limit_removes_the_top_band() -> None:
    x = torch.randn(4, S)
    # gate 8 below the probability; cutoff draw 0 -> 3.4 kHz
    y = augment(x, _draws(4, g8=0.0, g9=0.0), Augment(band_limit=1.0))
    assert (_band_energy(y, 4000, 24000) < 1e-6 * _band_energy(x, 4000, 24000)).all()
    assert torch.allclose(_band_energy(y, 100, 3000), _band_energy(x, 100, 3000), rtol=1e-3)


def test_eq_tilts_the_spectrum() -> None:
    x = torch.randn(2, S)
    # tilt draw 1 -> +3 dB/octave; bell draw 0.5 -> 0 dB
    y = augment(x, _draws(2, g4=0.0, g5=1.0, g7=0.5), Augment(eq=1.0))
    ratio = _band_energy(y, 8000, 16000) / _band_energy(x, 8000, 16000)
    low = _band_energy(y, 100, 200) / _band_energy(x, 100, 200)
    assert (ratio / low > 10 ** (3 * 6 / 10) / 2).all()  # ~6 octaves apart at +3 dB each


def test_mix_adds_the_next_crop_and_gates_hold() -> None:
    x = torch.randn(3, S)
    u = _draws(3, g1=0.0)  # 0 dB below
    u[:, 0] = torch.tensor([0.0, 0.9, 0.0])  # crop 1 is not mixed
    y = augment(x, u, Augment(mix=0.5))
    assert torch.allclose(y[0], x[0] + x[2]) and torch.equal(y[1], x[1])
    assert torch.allclose(y[2], x[2] + x[1])


def test_reverb_noise_and_stretch_keep_shape_and_stay_finite() -> None:
    t = torch.arange(S) / RATE
    x = torch.sin(2 * torch.pi * 440 * t).repeat(2, 1)
    everything = Augment(reverb=1.0, noise=1.0, stretch=1.0)
    y = augment(x, _draws(2, g12=0.0, g16=0.0, g20=0.0, g21=1.0), everything)
    assert y.shape == x.shape and torch.isfinite(y).all()
    peak = torch.fft.rfftfreq(S, 1 / RATE)[torch.fft.rfft(y[0]).abs().argmax()]
    assert 405 < peak < 425  # 6 % slower: 440 Hz -> 415 Hz


def test_augmented_plans_are_deterministic_and_leave_plain_crops_alone() -> None:
    args = ([24_000] * 5, 1600, 4, (-20.0, 0.0), 3)
    plain = CropPlanner(*args).plan(7)
    on = CropPlanner(*args, augment=Augment(eq=0.5)).plan(7)
    again = CropPlanner(*args, augment=Augment(eq=0.5)).plan(7)
    assert plain.aug is None and torch.equal(on.aug, again.aug)
    for field in ("clips", "offsets", "gain_db"):
        assert torch.equal(getattr(plain, field), getattr(on, field))


def test_augment_is_configurable_and_checked() -> None:
    config = get_train_preset("tiny").override({"augment.reverb": "0.3"})
    assert config.augment == Augment(reverb=0.3)
    assert dataclasses.replace(config.augment, reverb=0.0) == Augment()
    with pytest.raises(ValueError, match="probability"):
        get_train_preset("tiny").override({"augment.mix": "2"})


def test_tones_put_a_sine_where_the_draws_say() -> None:
    x = 0.1 * torch.randn(4, S)
    # gate 24 open; start draw 0.5 -> 1.26 kHz; steady; draw 0.0: the tone alone
    alone = augment(x, _draws(4, g24=0.0, g25=0.5, g26=0.0, g27=0.0), Augment(tones=1.0))
    spectrum = torch.fft.rfft(alone).abs()
    peak_hz = spectrum.argmax(-1).float() * RATE / S
    assert torch.allclose(peak_hz, torch.full((4,), 1265.0), atol=2 * RATE / S)
    assert alone.abs().amax().item() == pytest.approx(0.5, abs=1e-3)
    # draw 0.75: added 10 dB below the crop, which stays in it
    added = augment(x, _draws(4, g24=0.0, g25=0.5, g26=0.0, g27=0.75), Augment(tones=1.0))
    tone_power = (added - x).square().mean(-1)
    assert torch.allclose(tone_power / x.square().mean(-1), torch.full((4,), 0.1), rtol=0.05)
    # a glide ends two octaves away (draw 1.0 -> +2 octaves)
    glide = augment(x, _draws(4, g24=0.0, g25=0.2, g26=1.0, g27=0.0), Augment(tones=1.0))
    head, tail = glide[:, : S // 8], glide[:, -S // 8:]
    f_head = torch.fft.rfft(head).abs().argmax(-1).float() * RATE / (S // 8)
    f_tail = torch.fft.rfft(tail).abs().argmax(-1).float() * RATE / (S // 8)
    assert (f_tail / f_head > 3.0).all()
    # gate closed: nothing changes
    assert torch.equal(augment(x, _draws(4, g24=1.0), Augment(tones=0.5)), x)
