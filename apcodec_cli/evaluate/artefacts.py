"""The artefacts people hear in decoded audio, as numbers (numpy only).

    field              meaning (0 is right for all but the bandwidth loss, where 0 is too)
    hop_lines_db       how far the decoded long-term spectrum stands above the source's at the
                       first six multiples of the STFT frame rate (48 kHz / 40 = 1.2 kHz),
                       the largest of the six: whatever the decoder repeats in every frame
                       becomes lines there, audible as a buzz, also in pauses; it also
                       reads a clip's spectral error near those multiples (Opus at
                       12 kbit/s scores 5-8 dB on held-out clips), hence:
    hop_peaks_db       the lines themselves: how far the decoded long-term spectrum's peak
                       at each of those six multiples stands above its +-40 Hz
                       surroundings, beyond the source's peak there; the largest of six
    off_peaks_db       the same measure away from the lines: the largest of six at the
                       multiples plus 75, 525, 675 and 1125 Hz (never a multiple of the
                       150 Hz code frame rate either), averaged over the four offsets. A
                       codec that adds peaks anywhere (or a noisy clip) scores on both;
                       frame-rate lines show as hop_peaks_db well above off_peaks_db
    peak_spread        what the peak measures read where nothing is special
                       (`peak_spread`): the excess prominence at every bin from 100 Hz to
                       7 kHz, its mean and spread, and the largest of six drawn at random
                       frequencies (the chance level of hop_peaks_db and off_peaks_db). A
                       codec whose fine structure strays from the source's scores several
                       dB on both measures with no line at all: true amplitude with a random
                       phase, which can hold none, scores 4.1 dB hop_peaks_db on held-out
                       speech (docs/training.md, step 6)
    pooled_peaks       hop_peaks_db over a set of clips (`pooled_peaks`): the excess
                       prominence at each of the six multiples averaged over the clips
                       first, then the largest of the six. A frame-rate line stands at the
                       same frequencies in every clip and survives the average; the
                       fine-structure scatter that gives hop_peaks_db its chance level
                       does not (held-out speech, 48 clips: a streamable model with a
                       buzz 3.5 dB, release 5 1.4 dB, Opus at 12 kbit/s 0.0 dB, where
                       hop_peaks_db reads 7.2, 3.3 and 3.0 dB). Six means are still a
                       largest of six: with no line it reads about one standard error
                       above 0
    code_lines_db      the same kind of buzz at multiples of the code frame rate (150 Hz):
                       how far lines there stand above their +-40 Hz surroundings in the
                       decoded long-term spectrum, beyond what they do in the source's,
                       averaged over the lines up to 4 kHz
    quiet_floor_db     decoded over source energy in the source's quiet passages (20 ms
                       frames 30 dB or more below its loud frames): noise filling the
                       silence between notes or words
    bandwidth_loss_khz source bandwidth minus decoded bandwidth (each the top of the
                       long-term spectrum, in 187.5 Hz bands, within 60 dB of its loudest)

and for synthetic tones at -20 dBFS (`tone_errors`): the level error of sines at 1, 2 and
8 kHz and of a logarithmic sweep, and how far each sine's decoded peak moved.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

HOP_LINES = 6  # hop lines scored: the first six multiples of the frame rate
OFF_LINES_HZ = (75.0, 525.0, 675.0, 1125.0)  # where off_peaks_db looks, past each multiple
LTAS_FFT = 8192  # long-term spectrum: 5.9 Hz bins at 48 kHz, Hann frames, half overlap
QUIET_BELOW_DB = 30.0  # a frame this far below the loud frames is quiet
BANDWIDTH_DB = 60.0  # the bandwidth ends where the long-term spectrum falls this far
CODE_LINES_HZ = 4000.0  # code-frame lines are scored up to here, where they stand out most
TONE_DBFS = -20.0
TONES_HZ = (1000, 2000, 8000)


def ltas_db(x: np.ndarray) -> np.ndarray:
    """Long-term average power spectrum of a (T,) signal in dB, (LTAS_FFT // 2 + 1,)."""
    x = np.asarray(x, np.float64)
    if len(x) < LTAS_FFT:
        x = np.pad(x, (0, LTAS_FFT - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, LTAS_FFT)[::LTAS_FFT // 2]
    power = np.abs(np.fft.rfft(frames * np.hanning(LTAS_FFT))) ** 2
    return 10 * np.log10(power.mean(axis=0) + 1e-20)


def hop_lines_db(reference: np.ndarray, decoded: np.ndarray, rate: int, hop: int
                 ) -> np.ndarray:
    """(HOP_LINES,) excess in dB of the decoded long-term spectrum over the source's at the
    first multiples of rate / hop (the largest of the 5 bins around each line)."""
    n = min(len(reference), len(decoded))
    excess = ltas_db(decoded[:n]) - ltas_db(reference[:n])
    out = []
    for k in range(1, HOP_LINES + 1):
        centre = round(k * rate / hop * LTAS_FFT / rate)
        out.append(excess[centre - 2:centre + 3].max())
    return np.array(out)


def hop_peaks_db(reference: np.ndarray, decoded: np.ndarray, rate: int, hop: int
                 ) -> np.ndarray:
    """(HOP_LINES,) excess prominence in dB of the decoded long-term spectrum's peaks at
    the first multiples of rate / hop over the source's peaks there (`_prominence_db`)."""
    return _excess_prominence(reference, decoded, rate,
                              [k * rate / hop for k in range(1, HOP_LINES + 1)])


def off_peaks_db(reference: np.ndarray, decoded: np.ndarray, rate: int, hop: int) -> float:
    """`hop_peaks_db`'s largest of six, measured OFF_LINES_HZ past each multiple instead of
    at it, and averaged over those offsets: what the peak measure reads where no frame-rate
    line can be."""
    lines = [k * rate / hop for k in range(1, HOP_LINES + 1)]
    excess = _excess_prominence(reference, decoded, rate,
                                [f + offset for offset in OFF_LINES_HZ for f in lines])
    return float(excess.reshape(len(OFF_LINES_HZ), HOP_LINES).max(axis=1).mean())


def _excess_prominence(reference: np.ndarray, decoded: np.ndarray, rate: int,
                       freqs: list[float]) -> np.ndarray:
    """(len(freqs),) how far the decoded long-term spectrum's peak at each frequency (Hz)
    stands above its surroundings, minus the same for the source (`_prominence_db`)."""
    n = min(len(reference), len(decoded))
    spectra = [ltas_db(x[:n]) for x in (reference, decoded)]
    half, gap = _ring(rate)
    out = []
    for freq in freqs:
        centre = round(freq * LTAS_FFT / rate)
        source, ours = (_prominence_db(x, centre, half, gap) for x in spectra)
        out.append(ours - source)
    return np.array(out)


def measured_profiles(profiles: np.ndarray | list) -> np.ndarray:
    """(clips, HOP_LINES) float64: the clips' `hop_peaks_db` rows, those with a NaN left
    out (what `pooled_peaks` pools)."""
    profiles = np.asarray(profiles, np.float64).reshape(-1, HOP_LINES)
    return profiles[np.isfinite(profiles).all(axis=1)]


def pooled_peaks(profiles: np.ndarray) -> tuple[float, float]:
    """(mean, standard error) in dB, over the clips, of the excess prominence at the
    frame-rate multiple where that mean is largest: `profiles` is (clips, HOP_LINES), each
    row a clip's `hop_peaks_db`. Clips with a NaN are left out (`measured_profiles`); NaNs
    for fewer than two."""
    profiles = measured_profiles(profiles)
    if len(profiles) < 2:
        return math.nan, math.nan
    means = profiles.mean(axis=0)
    line = int(np.argmax(means))
    return float(means[line]), float(profiles[:, line].std(ddof=1) / math.sqrt(len(profiles)))


SPREAD_HZ = (100.0, 7000.0)  # where peak_spread looks


def peak_spread(reference: np.ndarray, decoded: np.ndarray, rate: int, draws: int = HOP_LINES
                ) -> dict[str, float]:
    """{mean, std, random_max} in dB of the excess prominence (`_excess_prominence`) at every
    long-term spectrum bin in SPREAD_HZ: its mean (above 0: the codec adds peaks; below: it
    flattens the source's), its standard deviation over the bins, and the expected largest of
    `draws` bins drawn at random without replacement, the level `hop_peaks_db` reads for a
    codec with no line (exact, from the order statistics)."""
    lo, hi = (round(f * LTAS_FFT / rate) for f in SPREAD_HZ)
    excess = np.sort(_excess_prominence(reference, decoded, rate,
                                        [k * rate / LTAS_FFT for k in range(lo, hi)]))
    # P(the largest of `draws` is the i-th smallest) = C(i - 1, draws - 1) / C(len, draws)
    i = np.arange(1, len(excess) + 1)
    log_weight = _log_choose(i - 1, draws - 1) - _log_choose(len(excess), draws)
    return {"mean": float(excess.mean()), "std": float(excess.std()),
            "random_max": float(np.sum(np.exp(log_weight) * excess))}


def _log_choose(n: np.ndarray | int, k: int) -> np.ndarray:
    """log C(n, k), -inf where n < k."""
    n = np.asarray(n, np.float64)
    with np.errstate(invalid="ignore"):
        out = (np.vectorize(math.lgamma)(n + 1) - math.lgamma(k + 1)
               - np.vectorize(math.lgamma)(np.maximum(n - k, 0) + 1))
    return np.where(n >= k, out, -np.inf)


def _ring(rate: int) -> tuple[int, int]:
    """(half, gap) in long-term spectrum bins of the surroundings a line is measured
    against: 10 to 40 Hz away on both sides."""
    return round(40 * LTAS_FFT / rate), round(10 * LTAS_FFT / rate)


def _prominence_db(spectrum: np.ndarray, centre: int, half: int, gap: int) -> float:
    """How far the largest of the 5 bins around `centre` stands above the median of the
    bins between `gap` and `half` bins away on both sides."""
    around = np.r_[spectrum[centre - half:centre - gap],
                   spectrum[centre + gap + 1:centre + half + 1]]
    return float(spectrum[centre - 2:centre + 3].max() - np.median(around))


def code_lines_db(reference: np.ndarray, decoded: np.ndarray, rate: int,
                  samples_per_frame: int) -> float:
    """Mean excess prominence (dB) of the decoded long-term spectrum's lines at multiples
    of the code frame rate (rate / samples_per_frame, 150 Hz) up to CODE_LINES_HZ, over the
    source's prominence there: a buzz at the rate the decoder's frames repeat."""
    step = rate / samples_per_frame
    return float(np.mean(_excess_prominence(
        reference, decoded, rate, [k * step for k in range(2, int(CODE_LINES_HZ / step) + 1)])))


def quiet_floor_db(reference: np.ndarray, decoded: np.ndarray, rate: int) -> float:
    """Decoded over source energy (dB) in the source's quiet 20 ms frames; NaN when the
    source has fewer than five quiet frames."""
    frame = rate // 50
    n = min(len(reference), len(decoded)) // frame
    if n == 0:
        return math.nan
    energy = [np.square(np.asarray(x[: n * frame], np.float64)).reshape(n, frame).mean(1)
              for x in (reference, decoded)]
    level = 10 * np.log10(energy[0] + 1e-20)
    quiet = level < np.percentile(level, 95) - QUIET_BELOW_DB
    if quiet.sum() < 5:
        return math.nan
    return float(10 * np.log10((energy[1][quiet].mean() + 1e-20)
                               / (energy[0][quiet].mean() + 1e-20)))


def bandwidth_hz(x: np.ndarray, rate: int, band: int = 32) -> float:
    """Top of the long-term spectrum, in bands of `band` bins (187.5 Hz at 48 kHz) so that
    a tone's peak does not set the scale, within BANDWIDTH_DB of its loudest band, in Hz."""
    power = 10 ** (ltas_db(x)[:LTAS_FFT // 2] / 10)
    bands = 10 * np.log10(power.reshape(-1, band).mean(1))
    above = np.nonzero(bands > bands.max() - BANDWIDTH_DB)[0]
    return float((above.max() + 1) * band * rate / LTAS_FFT)


def clip_artefacts(reference: np.ndarray, decoded: np.ndarray, rate: int, hop: int,
                   samples_per_frame: int) -> dict[str, float]:
    """The six clip fields of the module docstring."""
    return {"hop_lines_db": float(hop_lines_db(reference, decoded, rate, hop).max()),
            "hop_peaks_db": float(hop_peaks_db(reference, decoded, rate, hop).max()),
            "off_peaks_db": off_peaks_db(reference, decoded, rate, hop),
            "code_lines_db": code_lines_db(reference, decoded, rate, samples_per_frame),
            "quiet_floor_db": quiet_floor_db(reference, decoded, rate),
            "bandwidth_loss_khz": (bandwidth_hz(reference, rate)
                                   - bandwidth_hz(decoded, rate)) / 1000}


def probe_signals(rate: int, seconds: float = 1.0) -> dict[str, np.ndarray]:
    """Sines at TONES_HZ and a 50 Hz - 20 kHz logarithmic sweep, all at TONE_DBFS RMS."""
    t = np.arange(int(rate * seconds)) / rate
    peak = math.sqrt(2) * 10 ** (TONE_DBFS / 20)
    out = {f"tone_{f // 1000}k": peak * np.sin(2 * np.pi * f * t) for f in TONES_HZ}
    low, high, span = 50.0, 20_000.0, 2 * seconds
    ts = np.arange(int(rate * span)) / rate
    k = math.log(high / low)
    out["sweep"] = peak * np.sin(2 * np.pi * low * span / k * (np.exp(ts / span * k) - 1))
    return {name: x.astype(np.float32) for name, x in out.items()}


def tone_errors(code: Callable[[np.ndarray], np.ndarray], rate: int) -> dict[str, float]:
    """Level error (dB, decoded over source, middle half) of each test signal through
    `code` ((T,) -> (T,) float), and each sine's decoded peak shift in Hz."""
    out = {}
    for name, x in probe_signals(rate).items():
        y = np.asarray(code(x), np.float64)[: len(x)]
        middle = slice(len(x) // 4, 3 * len(x) // 4)
        power = [np.square(np.asarray(s[middle], np.float64)).mean() for s in (x, y)]
        out[f"{name}_level_db"] = float(10 * np.log10((power[1] + 1e-20) / power[0]))
        if name.startswith("tone"):
            spectrum = ltas_db(y[middle])
            source = ltas_db(x[middle])
            out[f"{name}_shift_hz"] = float((spectrum.argmax() - source.argmax())
                                            * rate / LTAS_FFT)
    return out
