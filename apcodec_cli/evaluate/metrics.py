"""Objective quality of a degraded signal against its reference: the package's one metrics
module, used by `apcodec eval`, training's validation (`train/validation.py`) and the pack
quality check (`evaluate/packs.py`).

Every metric takes two aligned mono float arrays (reference, degraded) of shape (T,) at
`rate` Hz and returns a float; NaN means "not measurable on this clip" (too short, silent).

    metric      direction  rate        implementation
    visqol      higher     48 kHz      ViSQOL v3 audio mode (the `visqol-python` wheel, its SVR)
    pesq        higher     16 kHz      PESQ wide-band (ITU-T P.862.2, the `pesq` package)
    estoi       higher     10 kHz      extended STOI (the `pystoi` package)
    lsd         lower      as given    log-spectral distance in dB, here in numpy
    mel         lower      as given    L1 distance of natural-log mel magnitudes, here in numpy
    level       0          any         level of degraded over reference, dB
    hop_lines   lower      as given    buzz at multiples of the frame rate, dB (`artefacts`)
    hop_peaks   lower      as given    the same lines as peaks above their surroundings, dB
    off_peaks   lower      as given    the same peak measure away from the lines, dB
    code_lines  lower      as given    buzz at multiples of the code frame rate, dB
    quiet_floor lower      as given    noise in the reference's quiet passages, dB
    bandwidth_loss lower   as given    bandwidth lost, kHz

LSD and the mel distance are written here once, so `apcodec eval` and the training log
report the same numbers. The mel filterbank is built here once too: training's mel losses
(`train/mel.LogMel`, in torch) use `mel_filterbank` and the framing constants below. PESQ
and ESTOI are meaningful for speech only. The optional packages are imported on first use.
"""

from __future__ import annotations

import functools
import importlib
import math
import warnings
from types import ModuleType
from typing import Any, Callable

import numpy as np
import soxr

from ..errors import ApcodecError
from ..nn.config import get_preset
from ..units import SAMPLE_RATE
from . import artefacts

Metric = Callable[[np.ndarray, np.ndarray, int], float]

#: Pip packages of the optional metrics, by module name.
#: The shipped codec's framing: its STFT hop (40 samples, 1.2 kHz frames) and latent frame
#: (320 samples, 150 frames/s), the rates at which a decoder's per-frame repetitions become
#: lines.
HOP_LENGTH = get_preset("apcodec-48k-small").hop_length
SAMPLES_PER_FRAME = get_preset("apcodec-48k-small").samples_per_frame
PACKAGES = {"visqol": "visqol-python", "pesq": "pesq", "pystoi": "pystoi"}
VISQOL_RATE = 48_000
PESQ_RATE = 16_000
STOI_RATE = 10_000

#: The mel spectrogram of the mel distance and of training's mel losses (`train/mel.py`):
#: 80 Slaney bands of unit area over the whole band, 1024-point FFT, window 320, hop 40,
#: natural log of magnitudes floored at 1e-5.
MEL_BANDS, MEL_FFT, MEL_WIN, MEL_HOP, MEL_FLOOR = 80, 1024, 320, 40, 1e-5


class MissingDependencyError(ApcodecError, ImportError):
    """An optional package of the `eval` extra is not installed."""


def require(module: str) -> ModuleType:
    """Import an optional metric package, or raise with the command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            f"the {module!r} module is missing: pip install 'apcodec[eval]' "
            f"(or pip install {PACKAGES.get(module, module)})") from None


def _aligned(reference: np.ndarray, degraded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both signals as float64, cut to the shorter length."""
    n = min(len(reference), len(degraded))
    return (np.asarray(reference, np.float64)[:n], np.asarray(degraded, np.float64)[:n])


def _resampled(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    return x if rate == target else soxr.resample(x, rate, target, quality="VHQ")


def log_spectral_distance(reference: np.ndarray, degraded: np.ndarray,
                          rate: int = SAMPLE_RATE, max_hz: float | None = None,
                          n_fft: int = 2048, hop: int = 512, floor_db: float = -100.0,
                          silence_db: float = -60.0) -> float:
    """Log-spectral distance in dB: the mean over non-silent frames of the RMS difference
    of the dB power spectra.

    Power spectra (Hann window of `n_fft` samples, hop `hop`, scaled so that a full-scale
    sine peaks at 0 dB) are floored at `floor_db`; the distance is the RMS difference of
    the dB spectra over bins up to `max_hz` (None: all), averaged over the frames whose
    reference level is above `silence_db` dBFS. The STFT size is in samples whatever the
    rate: `rate` only places `max_hz`. NaN when shorter than one frame or all silent.
    """
    ref, deg = _aligned(reference, degraded)
    if len(ref) < n_fft:
        return math.nan
    window = np.hanning(n_fft)
    scale = (window.sum() / 2) ** 2
    bins = n_fft // 2 + 1 if max_hz is None else int(max_hz * n_fft / rate) + 1

    def frames(x: np.ndarray) -> np.ndarray:
        return np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]

    def spectrum(x: np.ndarray) -> np.ndarray:
        power = np.abs(np.fft.rfft(frames(x) * window, axis=1)[:, :bins]) ** 2 / scale
        return 10 * np.log10(np.maximum(power, 10 ** (floor_db / 10)))

    active = 10 * np.log10(np.mean(frames(ref) ** 2, axis=1) + 1e-12) > silence_db
    if not active.any():
        return math.nan
    diff = spectrum(ref)[active] - spectrum(deg)[active]
    return float(np.mean(np.sqrt(np.mean(diff ** 2, axis=1))))


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel: linear (200/3 Hz per mel) below 1 kHz, logarithmic above."""
    log_part = 15.0 + np.log(np.maximum(hz, 1000.0) / 1000.0) / (math.log(6.4) / 27.0)
    return np.where(hz < 1000.0, hz / (200.0 / 3.0), log_part)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    log_part = 1000.0 * np.exp(math.log(6.4) / 27.0 * (np.maximum(mel, 15.0) - 15.0))
    return np.where(mel < 15.0, mel * (200.0 / 3.0), log_part)


@functools.lru_cache(maxsize=4)
def mel_filterbank(rate: int) -> np.ndarray:
    """(MEL_BANDS, MEL_FFT // 2 + 1) triangular Slaney filters from 0 to rate/2, in float64.

    Each filter has unit area (wide high filters are not louder), the convention of the
    HiFi-GAN family of vocoders. Read-only: one array is shared by every caller.
    """
    bins = np.linspace(0.0, rate / 2, MEL_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(0.0, _hz_to_mel(np.array(rate / 2)), MEL_BANDS + 2))
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    weights = np.maximum(np.minimum((bins - low) / (centre - low),
                                    (high - bins) / (high - centre)), 0.0)
    weights = weights * (2.0 / (high - low))
    weights.setflags(write=False)
    return weights


def log_mel(x: np.ndarray, rate: int) -> np.ndarray:
    """(MEL_BANDS, T // MEL_HOP + 1) natural-log mel magnitudes floored at 1e-5.

    Same framing as torch.stft(center=True, pad_mode="constant"): zero padding of half
    the FFT each side, the periodic Hann window of 320 centred in the 1024-point frame.
    """
    window = np.zeros(MEL_FFT)
    start = (MEL_FFT - MEL_WIN) // 2
    window[start:start + MEL_WIN] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(MEL_WIN) / MEL_WIN)
    padded = np.pad(np.asarray(x, np.float64), MEL_FFT // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, MEL_FFT)[::MEL_HOP]
    filters = mel_filterbank(rate)
    out = []
    for i in range(0, len(frames), 2048):  # blocks of frames keep memory flat in the length
        spectrum = np.abs(np.fft.rfft(frames[i:i + 2048] * window, axis=1))
        out.append(filters @ spectrum.T)
    return np.log(np.maximum(np.concatenate(out, axis=1), MEL_FLOOR))


def log_mel_distance(reference: np.ndarray, degraded: np.ndarray, rate: int) -> float:
    """Mean absolute difference of the log-mel spectrograms (training's `mel_l1`)."""
    ref, deg = _aligned(reference, degraded)
    return float(np.mean(np.abs(log_mel(ref, rate) - log_mel(deg, rate)))) if len(ref) else math.nan


#: RMS at or below which `level_db` calls a source, and a decoded signal, silent.
SILENT_SOURCE_RMS = 1e-6
SILENT_DECODED_RMS = 1e-9


def level_db(reference: np.ndarray, degraded: np.ndarray) -> float:
    """Level of `degraded` against `reference` (ratio of RMS, dB; 0 is right); NaN if either
    is silent."""
    ref, deg = _aligned(reference, degraded)
    ref_rms, deg_rms = math.sqrt(float(np.mean(ref ** 2))), math.sqrt(float(np.mean(deg ** 2)))
    if ref_rms > SILENT_SOURCE_RMS and deg_rms > SILENT_DECODED_RMS:
        return 20.0 * math.log10(deg_rms / ref_rms)
    return math.nan


@functools.lru_cache(maxsize=1)
def _visqol_api() -> Any:
    """One ViSQOL instance in audio mode with the wheel's SVR model (built on first use)."""
    api = require("visqol").VisqolApi()
    api.create(mode="audio")
    return api


def visqol(reference: np.ndarray, degraded: np.ndarray, rate: int) -> float:
    """ViSQOL v3 MOS-LQO (1 to about 4.75) in audio mode, at 48 kHz; NaN below about 1 s."""
    try:
        return visqol_bands(reference, degraded, rate)[2]
    except ValueError:  # "spectrum size smaller than minimum patch size": clip too short
        return math.nan


def visqol_bands(reference: np.ndarray, degraded: np.ndarray, rate: int
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """ViSQOL's per-band similarity: (centre frequencies in Hz, mean NSIM of each of its 32
    gammatone bands lowest first, the MOS-LQO predicted from them and `visqol` returns);
    see `scripts/music_bands.py`. Raises ValueError for a clip too short to score."""
    ref, deg = _aligned(_resampled(reference, rate, VISQOL_RATE),
                        _resampled(degraded, rate, VISQOL_RATE))
    result = _visqol_api().measure_from_arrays(ref, deg, VISQOL_RATE)
    return np.asarray(result.center_freq_bands), np.asarray(result.fvnsim), float(result.moslqo)


def pesq_wb(reference: np.ndarray, degraded: np.ndarray, rate: int) -> float:
    """Wide-band PESQ MOS-LQO (1.04 to 4.64) at 16 kHz; NaN when no speech is detected."""
    pesq = require("pesq")
    ref, deg = _aligned(_resampled(reference, rate, PESQ_RATE),
                        _resampled(degraded, rate, PESQ_RATE))
    score = pesq.pesq(PESQ_RATE, ref, deg, "wb", on_error=pesq.PesqError.RETURN_VALUES)
    return float(score) if score >= 0 else math.nan  # negative values are error codes


def estoi(reference: np.ndarray, degraded: np.ndarray, rate: int) -> float:
    """Extended STOI (0 to 1) at pystoi's native 10 kHz; NaN when under 30 speech frames."""
    pystoi = require("pystoi")
    ref, deg = _aligned(_resampled(reference, rate, STOI_RATE),
                        _resampled(degraded, rate, STOI_RATE))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        score = pystoi.stoi(ref, deg, STOI_RATE, extended=True)
    too_short = any("Not enough STFT frames" in str(w.message) for w in caught)
    return math.nan if too_short else float(score)


#: Every metric by name; the speech ones are computed for speech clips only.
def level(reference: np.ndarray, degraded: np.ndarray, rate: int) -> float:
    """`level_db` as a metric (the rate does not matter)."""
    return level_db(reference, degraded)


def hop_lines(reference: np.ndarray, degraded: np.ndarray, rate: int) -> float:
    """The largest excess (dB) of the degraded long-term spectrum over the reference's at
    the first multiples of the codec's frame rate (`artefacts.hop_lines_db`)."""
    return float(artefacts.hop_lines_db(reference, degraded, rate, HOP_LENGTH).max())


def hop_peaks(reference: np.ndarray, degraded: np.ndarray, rate: int) -> float:
    """The largest excess prominence (dB) of the degraded long-term spectrum's peaks at the
    first multiples of the codec's frame rate (`artefacts.hop_peaks_db`)."""
    return float(artefacts.hop_peaks_db(reference, degraded, rate, HOP_LENGTH).max())


def hop_peak_profile(reference: np.ndarray, degraded: np.ndarray, rate: int) -> list[float]:
    """The excess prominence (dB) at each of the first multiples of the codec's frame rate
    (`artefacts.hop_peaks_db`): what `artefacts.pooled_peaks` averages over clips."""
    return [float(v) for v in artefacts.hop_peaks_db(reference, degraded, rate, HOP_LENGTH)]


def off_peaks(reference: np.ndarray, degraded: np.ndarray, rate: int) -> float:
    """`hop_peaks` measured away from the multiples of the frame rate
    (`artefacts.off_peaks_db`): what it reads where there is no line."""
    return artefacts.off_peaks_db(reference, degraded, rate, HOP_LENGTH)


def code_lines(reference: np.ndarray, degraded: np.ndarray, rate: int) -> float:
    """Excess prominence (dB) of lines at multiples of the code frame rate, 150 Hz
    (`artefacts.code_lines_db`)."""
    return artefacts.code_lines_db(reference, degraded, rate, SAMPLES_PER_FRAME)


def bandwidth_loss(reference: np.ndarray, degraded: np.ndarray, rate: int) -> float:
    """Reference minus degraded bandwidth in kHz (`artefacts.bandwidth_hz`)."""
    return (artefacts.bandwidth_hz(reference, rate) - artefacts.bandwidth_hz(degraded, rate)
            ) / 1000


METRICS: dict[str, Metric] = {"visqol": visqol, "pesq": pesq_wb, "estoi": estoi,
                              "lsd": log_spectral_distance, "mel": log_mel_distance,
                              "level": level, "hop_lines": hop_lines,
                              "hop_peaks": hop_peaks, "off_peaks": off_peaks,
                              "code_lines": code_lines,
                              "quiet_floor": artefacts.quiet_floor_db,
                              "bandwidth_loss": bandwidth_loss}
SPEECH_ONLY = frozenset({"pesq", "estoi"})


def metric_names(speech: bool) -> list[str]:
    """Names of the metrics computed for a speech (or other) clip, in table order."""
    return [name for name in METRICS if speech or name not in SPEECH_ONLY]


def check_dependencies(speech: bool = True) -> None:
    """Raise MissingDependencyError now rather than after the first clip has been coded."""
    for module in ("visqol",) + (("pesq", "pystoi") if speech else ()):
        require(module)


def score(reference: np.ndarray, degraded: np.ndarray, rate: int, speech: bool,
          known: dict[str, float] | None = None) -> dict[str, float]:
    """All metrics of one degraded signal: {name: value}, speech metrics only for speech;
    those in `known`, which the caller has already computed, are taken from it."""
    known = known or {}
    return {name: known[name] if name in known else METRICS[name](reference, degraded, rate)
            for name in metric_names(speech)}
