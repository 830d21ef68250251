"""Spectrogram images of a clip's systems, on one colour scale, in numpy.

Every image has a fixed number of columns, each the spectrum of one Hann-windowed frame
centred on its stretch of the clip (so a 4 s and a 10 s clip make images of one width).
Levels are in dB of a full-scale sine: a sine of amplitude 1 shows 0 dB at its frequency
(less up to 1.4 dB between bins), whatever the frame length, so the full-band view and the
zoom share the scale. Each row of an image shows the loudest of the frequency bins it
covers, so that harmonics stay visible; the lowest frequencies are at the bottom. All the
images of one clip map the same dB range to colours: from `top`, the loudest cell of any
of them rounded up, down to `top - RANGE_DB`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping

import numpy as np

from ...units import SAMPLE_RATE

RANGE_DB = 80.0
COLUMNS = 384


@dataclasses.dataclass(frozen=True)
class View:
    """One kind of image: the band it shows, its frame length and its height in pixels."""

    name: str
    max_hz: float
    n_fft: int
    rows: int


FULL = View("full", SAMPLE_RATE / 2, 2048, 192)
ZOOM = View("zoom", 4000.0, 4096, 160)  # longer frames: speech harmonics stay apart
VIEWS = (FULL, ZOOM)

# Colours from silence to loud: black, indigo, purple, red, orange, yellow, cream.
_ANCHORS = np.array([(0, 0, 0), (36, 12, 92), (118, 24, 122), (196, 52, 72),
                     (240, 126, 32), (250, 206, 72), (255, 250, 220)], np.float64)


def palette(size: int = 256) -> np.ndarray:
    """(size, 3) uint8 RGB colours, dark (quiet) to bright (loud), interpolated linearly."""
    where = np.linspace(0, len(_ANCHORS) - 1, size)
    low = np.minimum(where.astype(int), len(_ANCHORS) - 2)
    frac = (where - low)[:, None]
    return np.rint(_ANCHORS[low] * (1 - frac) + _ANCHORS[low + 1] * frac).astype(np.uint8)


def level_db(audio: np.ndarray, view: View, columns: int = COLUMNS) -> np.ndarray:
    """(view.rows, columns) levels in dB of a full-scale sine, low frequencies last (the
    bottom row of an image).

    Args:
        audio: (T,) float samples at 48 kHz.
        view: The band, frame length and rows of the image.
        columns: Frames, centred on equal stretches of the clip.
    """
    audio = np.asarray(audio, np.float64).reshape(-1)
    half = view.n_fft // 2
    padded = np.pad(audio, (half, half))
    centres = ((np.arange(columns) + 0.5) * len(audio) / columns).astype(int) + half
    frames = padded[centres[:, None] + np.arange(-half, half)]  # (columns, n_fft)
    window = np.hanning(view.n_fft + 1)[:-1]  # periodic Hann
    spectrum = np.fft.rfft(frames * window, axis=1)
    power = (2 * np.abs(spectrum) / window.sum()) ** 2  # a sine of amplitude A: A**2
    bins = int(view.max_hz / (SAMPLE_RATE / view.n_fft)) + 1
    edges = np.linspace(0, bins, view.rows + 1).astype(int)
    rows = np.maximum.reduceat(power[:, :bins], edges[:-1], axis=1)
    return 10 * np.log10(rows.T[::-1] + 1e-20)


def indices(db: np.ndarray, top: float, colours: int = 256) -> np.ndarray:
    """uint8 colour indices of dB levels: `top - RANGE_DB` and below is 0, `top` the last."""
    scaled = (db - (top - RANGE_DB)) / RANGE_DB * (colours - 1)
    return np.clip(np.rint(scaled), 0, colours - 1).astype(np.uint8)


def clip_images(signals: Mapping[str, np.ndarray], colours: int = 256
                ) -> tuple[dict[tuple[str, str], np.ndarray], float]:
    """Index images (into `palette(colours)`) of every signal in every view, on the clip's
    one scale.

    Returns:
        {(signal name, view name): (rows, COLUMNS) uint8} and `top`, the dB of the
        brightest colour (the quietest shown is `top - RANGE_DB`).
    """
    levels = {(name, view.name): level_db(audio, view)
              for name, audio in signals.items() for view in VIEWS}
    top = math.ceil(max(float(db.max()) for db in levels.values()))
    return {key: indices(db, top, colours) for key, db in levels.items()}, float(top)
