"""The artefact figures: each one reads 0 (or nearly) on a clean copy and moves the right way
on the artefact it names."""

from __future__ import annotations

import math

import numpy as np
import pytest

from apcodec_cli.evaluate import artefacts

RATE = 48_000


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    """3 s of chords with pauses: notes in the first and last second, silence between."""
    rng = np.random.default_rng(0)
    t = np.arange(3 * RATE) / RATE
    x = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (220, 277, 330, 3000, 9000))
    x = x + 3e-3 * rng.standard_normal(t.size)  # a source reaching 24 kHz, 52 dB down
    x[RATE:2 * RATE] *= 1e-4
    return x


def test_a_copy_has_no_artefacts(music: np.ndarray) -> None:
    found = artefacts.clip_artefacts(music, music.copy(), RATE, 40, 320)
    assert found["hop_lines_db"] == pytest.approx(0, abs=1e-9)
    assert found["hop_peaks_db"] == pytest.approx(0, abs=1e-9)
    assert found["off_peaks_db"] == pytest.approx(0, abs=1e-9)
    assert found["code_lines_db"] == pytest.approx(0, abs=1e-9)
    assert found["quiet_floor_db"] == pytest.approx(0, abs=1e-9)
    assert found["bandwidth_loss_khz"] == 0


def test_each_artefact_moves_its_own_figure(music: np.ndarray) -> None:
    t = np.arange(music.size) / RATE
    buzz = music + 3e-3 * np.sin(2 * np.pi * 1200 * t)
    found = artefacts.clip_artefacts(music, buzz, RATE, 40, 320)
    assert found["hop_lines_db"] > 10 and found["hop_peaks_db"] > 10
    pulse = np.zeros(320)
    pulse[0] = 0.05
    clicks = music + np.tile(pulse, music.size // 320)  # a click every code frame
    assert artefacts.code_lines_db(music, clicks, RATE, 320) > 6
    assert abs(artefacts.code_lines_db(music, clicks, RATE, 331)) < 1  # not at its lines
    hiss = music + 3e-3 * np.random.default_rng(1).standard_normal(music.size)
    assert artefacts.quiet_floor_db(music, hiss, RATE) > 20
    spectrum = np.fft.rfft(music)
    spectrum[np.fft.rfftfreq(music.size, 1 / RATE) > 12_000] = 0
    dull = np.fft.irfft(spectrum, music.size)
    assert 10 < artefacts.clip_artefacts(music, dull, RATE, 40, 320)["bandwidth_loss_khz"] < 13


def test_hop_peaks_read_lines_not_a_broad_spectral_error() -> None:
    """Noise made 6 dB louder from 1 to 8 kHz has no line, which the excess over the
    source reads as one and the peaks do not; a sine at 2.4 kHz reads on both."""
    rng = np.random.default_rng(2)
    noise = 0.05 * rng.standard_normal(4 * RATE)
    spectrum = np.fft.rfft(noise)
    freqs = np.fft.rfftfreq(noise.size, 1 / RATE)
    spectrum[(freqs > 1000) & (freqs < 8000)] *= 2.0
    louder = np.fft.irfft(spectrum, noise.size)
    assert artefacts.hop_lines_db(noise, louder, RATE, 40).max() > 5
    assert abs(artefacts.hop_peaks_db(noise, louder, RATE, 40)).max() < 1.5
    t = np.arange(noise.size) / RATE
    line = noise + 6e-3 * np.sin(2 * np.pi * 2400 * t)  # 2.4 kHz: the second line
    peaks = artefacts.hop_peaks_db(noise, line, RATE, 40)
    assert peaks[1] > 6 and abs(np.delete(peaks, 1)).max() < 1.5


def test_off_peaks_read_peaks_away_from_the_lines() -> None:
    """A line at 2.4 kHz reads on hop_peaks and not off_peaks; one at 1.2 kHz + 525 Hz on
    off_peaks (a quarter of it: one of four offsets) and not on hop_peaks."""
    rng = np.random.default_rng(3)
    noise = 0.05 * rng.standard_normal(4 * RATE)
    t = np.arange(noise.size) / RATE
    on = noise + 6e-3 * np.sin(2 * np.pi * 2400 * t)
    off = noise + 6e-3 * np.sin(2 * np.pi * 1725 * t)
    assert artefacts.hop_peaks_db(noise, on, RATE, 40).max() > 6
    assert abs(artefacts.off_peaks_db(noise, on, RATE, 40)) < 1.0
    assert artefacts.off_peaks_db(noise, off, RATE, 40) > 1.5
    assert abs(artefacts.hop_peaks_db(noise, off, RATE, 40)).max() < 1.5
    assert artefacts.off_peaks_db(noise, noise, RATE, 40) == pytest.approx(0, abs=1e-9)


def test_quiet_floor_needs_quiet_frames() -> None:
    loud = np.sin(np.arange(RATE) / 10)
    assert math.isnan(artefacts.quiet_floor_db(loud, loud, RATE))


def test_tone_errors_read_level_and_pitch() -> None:
    same = artefacts.tone_errors(lambda x: x, RATE)
    assert all(abs(v) < 1e-6 for v in same.values())
    assert set(same) == {"tone_1k_level_db", "tone_2k_level_db", "tone_8k_level_db",
                         "sweep_level_db", "tone_1k_shift_hz", "tone_2k_shift_hz",
                         "tone_8k_shift_hz"}
    quieter = artefacts.tone_errors(lambda x: 0.5 * x, RATE)
    assert quieter["tone_1k_level_db"] == pytest.approx(-6.02, abs=0.01)

    def octave_down(x: np.ndarray) -> np.ndarray:
        return np.repeat(x[: len(x) // 2], 2)  # half the frequency, same length and level

    shifted = artefacts.tone_errors(octave_down, RATE)
    assert shifted["tone_2k_shift_hz"] == pytest.approx(-1000, abs=10)
    signals = artefacts.probe_signals(RATE)
    for x in signals.values():
        assert 20 * np.log10(np.sqrt(np.mean(np.square(x.astype(np.float64))))) == \
            pytest.approx(artefacts.TONE_DBFS, abs=0.05)


def test_peak_spread_is_the_chance_level_of_the_peak_measures() -> None:
    """A copy spreads nothing; independent noise of the source's own spectrum adds no peak
    on average (mean near 0) but its fine structure differs bin by bin, so the largest of
    six random bins reads more than its spread; added sines raise the mean; the exact expectation
    agrees with drawing six bins at random."""
    rng = np.random.default_rng(4)
    noise = 0.05 * rng.standard_normal(4 * RATE)
    copy = artefacts.peak_spread(noise, noise.copy(), RATE)
    assert copy == {"mean": pytest.approx(0, abs=1e-9), "std": pytest.approx(0, abs=1e-9),
                    "random_max": pytest.approx(0, abs=1e-9)}
    other = 0.05 * rng.standard_normal(noise.size)
    spread = artefacts.peak_spread(noise, other, RATE)
    assert abs(spread["mean"]) < 0.2 and spread["std"] > 0.5
    assert spread["random_max"] > 1.2 * spread["std"]  # the largest of six normals: 1.27 sd
    t = np.arange(noise.size) / RATE
    sines = other + sum(6e-3 * np.sin(2 * np.pi * f * t) for f in range(230, 7000, 170))
    assert artefacts.peak_spread(noise, sines, RATE)["mean"] > spread["mean"] + 1
    # the same bins through the loop helper, and six drawn at random
    rate_bins = RATE / artefacts.LTAS_FFT
    freqs = [k * rate_bins for k in range(round(artefacts.SPREAD_HZ[0] / rate_bins),
                                          round(artefacts.SPREAD_HZ[1] / rate_bins))]
    excess = artefacts._excess_prominence(noise, other, RATE, freqs)
    assert excess.std() == pytest.approx(spread["std"])
    drawn = [rng.choice(excess, 6, replace=False).max() for _ in range(20_000)]
    assert np.mean(drawn) == pytest.approx(spread["random_max"], abs=0.05)


def test_pooled_peaks_keep_a_line_and_average_the_scatter_away() -> None:
    """Clips whose six excess prominences scatter around 0 read well above 0 as the mean
    of each clip's largest (hop_peaks_db), near 0 pooled; a line of 3 dB at the second
    multiple in every clip reads 3 dB pooled, with the standard error of that line."""
    rng = np.random.default_rng(5)
    scatter = rng.normal(0, 3, (200, artefacts.HOP_LINES))
    mean, se = artefacts.pooled_peaks(scatter)
    assert scatter.max(axis=1).mean() > 3 and abs(mean) < 4 * se < 1.5
    lined = scatter.copy()
    lined[:, 1] += 10
    mean, se = artefacts.pooled_peaks(lined)
    assert mean == pytest.approx(10 + scatter[:, 1].mean())
    assert se == pytest.approx(scatter[:, 1].std(ddof=1) / math.sqrt(200))
    with_nan = np.vstack([lined, np.full(artefacts.HOP_LINES, np.nan)])
    assert artefacts.pooled_peaks(with_nan) == (mean, se)  # a clip not measured
    assert all(math.isnan(v) for v in artefacts.pooled_peaks(lined[:1]))
