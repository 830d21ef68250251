"""Level gains: the decoded signal's loudness, measured by the encoder and sent with the codes.

A neural decoder gets the level of some recordings wrong by a few dB (measured: half of a
set of held-out speech clips came back more than 1 dB off, some by 8 dB). A file of format
version 3 therefore carries, for every channel and every *level segment* of
`level_frames` code frames (0.2 s at the shipped settings), a gain in steps of 0.25 dB
that the decoder multiplies the decoded samples by. The encoder chooses the gains by
analysis by synthesis: it decodes its own codes and sets each segment's gain so that the
segment's energy after the gain equals the source's (`LevelMeter`). The gains cost one
byte per segment and channel: 40 bit/s, under 1 % of the codes.

The gain is not a step per segment: it is interpolated linearly (in amplitude) between the
centres of the segments and held before the first centre and after the last one
(`gain_curve`, specified in docs/format.md), so it never clicks. Because each sample's
gain mixes two segments' gains, the encoder solves for all of them together; it keeps,
per segment, three sums of the decoded signal's energy weighted by the interpolation, from
which the energy after any gains follows exactly, so the solve needs one decode.

numpy only, no torch.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

#: Length of a level segment that writers aim at (`Codec.level_frames` rounds it to whole
#: code frames dividing the chunk): 0.2 s, which follows the level of speech syllable by
#: syllable; on held-out speech 1 s segments left the level error twice as wide, gained no
#: ViSQOL and raised the quiet floor twice as much (docs/format.md, "Level gains").
SEGMENT_SECONDS = 0.2
#: dB per step of a stored gain (an int8: -128..127 steps).
STEP_DB = 0.25
#: The gains an encoder may choose, in steps: -30 dB (noise where the source is silent) to
#: +31.75 dB, the most a byte holds (the shipped full model decodes a steady 2 kHz sine 28 dB
#: too quiet, a 4 kHz one 39 dB).
LOWEST, HIGHEST = -120, 127
#: Mean square (of full-scale 1.0 samples) added to both energies before their ratio is
#: taken: -70 dBFS, so that a segment where source and decoded audio are both near silence
#: keeps unit gain, while decoded noise over a silent source is turned down (`solve`).
FLOOR = 10.0 ** (-70.0 / 10.0)
#: Rounds of the fixed-point solve (each gain moves by the ratio still missing).
ROUNDS = 16


def amplitudes(steps: np.ndarray) -> np.ndarray:
    """Stored gains (int8 steps of `STEP_DB`) as amplitude factors (float64)."""
    return 10.0 ** (np.asarray(steps, np.float64) * (STEP_DB / 20.0))


def _positions(first: int, count: int, segment: int, n_segments: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """For samples [first, first + count): the left segment j of each sample's pair and
    its weight f on segment j + 1 (docs/format.md, "Level gains")."""
    t = np.arange(first, first + count, dtype=np.float64)
    u = np.clip((t + 0.5) / segment - 0.5, 0.0, max(n_segments - 1, 0))
    j = np.minimum(np.floor(u).astype(np.int64), max(n_segments - 2, 0))
    return j, u - j


def gain_curve(gains: np.ndarray, segment: int, first: int, count: int) -> np.ndarray:
    """The gain of samples [first, first + count) of every channel.

    Args:
        gains: (C, M) stored gains (steps), segment by segment from the file's start.
        segment: Samples per level segment (`level_frames` x samples per frame).

    Returns:
        (C, count) float64 amplitude factors.
    """
    a = amplitudes(gains)
    n = a.shape[1]
    if n == 1:
        return np.repeat(a, count, axis=1)
    j, f = _positions(first, count, segment, n)
    return a[:, j] * (1.0 - f) + a[:, j + 1] * f


def apply(blocks: Iterable[np.ndarray], first: int, gains: np.ndarray, segment: int
          ) -> Iterator[np.ndarray]:
    """(C, n) float32 blocks of a decoded signal starting at sample `first`, times their
    gains; `gains` as in `gain_curve`."""
    position = first
    for block in blocks:
        n = block.shape[1]
        yield (block * gain_curve(gains, segment, position, n)).astype(np.float32)
        position += n


class LevelMeter:
    """The encoder's side: the source's energy per segment, then the decoded signal's,
    then the gains that make them equal.

        >>> meter = LevelMeter(channels, segment, n_segments)
        >>> blocks = meter.source(blocks)          # pass the source through, measured
        >>> ... encode ...; for block in decoded: meter.decoded(block)
        >>> gains = meter.solve()                  # (C, M) int8

    Args:
        channels: Channels of the signal.
        segment: Samples per level segment.
        n_segments: Level segments in the file (M).
    """

    def __init__(self, channels: int, segment: int, n_segments: int) -> None:
        self.segment = segment
        self.n = n_segments
        self._source = np.zeros((channels, n_segments))
        # _moments[c, i, h, k]: over the samples of segment i whose pair is (i - 1 + h,
        # i + h), the decoded energy weighted by (1-f)^2, 2f(1-f) and f^2 (k = 0, 1, 2).
        self._moments = np.zeros((channels, n_segments, 2, 3))
        self._count = np.zeros(n_segments)
        self._at_source = self._at_decoded = 0

    def source(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Pass (C, n) blocks of the source (at the codec's rate) through, measured."""
        for block in blocks:
            self._add_source(block)
            yield block

    def _segments_of(self, first: int, count: int) -> np.ndarray:
        return np.minimum(np.arange(first, first + count) // self.segment, self.n - 1)

    def _add_source(self, block: np.ndarray) -> None:
        count = block.shape[1]
        if count and self.n:
            seg = self._segments_of(self._at_source, count)
            energy = np.asarray(block, np.float64) ** 2
            for c in range(energy.shape[0]):
                self._source[c] += np.bincount(seg, energy[c], minlength=self.n)
            self._count += np.bincount(seg, minlength=self.n)
        self._at_source += count

    def decoded(self, block: np.ndarray) -> None:
        """Add the next (C, n) block of the decoded signal (before any gain)."""
        count = block.shape[1]
        if count and self.n:
            seg = self._segments_of(self._at_decoded, count)
            j, f = _positions(self._at_decoded, count, self.segment, self.n)
            half = np.clip(j - seg + 1, 0, 1)  # 0: pair (i - 1, i); 1: pair (i, i + 1)
            slot = seg * 2 + half
            weights = ((1.0 - f) ** 2, 2.0 * f * (1.0 - f), f ** 2)
            energy = np.asarray(block, np.float64) ** 2
            for c in range(energy.shape[0]):
                for k, w in enumerate(weights):
                    self._moments[c, :, :, k] += np.bincount(
                        slot, energy[c] * w, minlength=2 * self.n).reshape(self.n, 2)
        self._at_decoded += count

    def energies(self, a: np.ndarray, start: int = 0) -> np.ndarray:
        """(C, m) decoded energy of segments [start, start + m) after amplitude gains `a`
        (C, m) of those segments, the gain after the last held at its own (and, for
        start > 0, the gain before the first too: that segment's energy is then not its
        own, the others' are)."""
        m = self._moments[:, start:start + a.shape[1]]
        if self.n == 1:
            return m.sum(axis=(2, 3)) * a ** 2
        pad = np.concatenate([a[:, :1], a, a[:, -1:]], axis=1)  # a[i-1] .. a[i+1], held
        left, mid, right = pad[:, :-2], pad[:, 1:-1], pad[:, 2:]
        return (m[:, :, 0, 0] * left ** 2 + m[:, :, 0, 1] * left * mid + m[:, :, 0, 2] * mid ** 2
                + m[:, :, 1, 0] * mid ** 2 + m[:, :, 1, 1] * mid * right
                + m[:, :, 1, 2] * right ** 2)

    def solve(self, upto: int | None = None, fixed: np.ndarray | None = None) -> np.ndarray:
        """The gains, int8 steps, that bring each segment to the source's energy.

        Args:
            upto: Solve segments [0, upto) only (default: all), as if the gain after them
                stayed that of the last: an encoder that writes as it goes solves the
                segments decoded so far, and again with more.
            fixed: (C, k) gains of the first k segments, already written: kept as they are.

        Returns:
            (C, upto - k) gains of segments [k, upto).

        Segment i's target is E_d * (E_s + F) / (E_d + F): E_s and E_d the source's and the
        decoded signal's energy, F `FLOOR` times its samples. Gains are interpolated
        between segments (`gain_curve`), so they are solved for together: each round moves
        every free gain by the square root of its segment's target over its energy after
        the current gains (`energies`), clipped to LOWEST..HIGHEST.
        """
        channels = self._source.shape[0]
        upto = self.n if upto is None else min(upto, self.n)
        k = 0 if fixed is None else fixed.shape[1]
        if upto <= k:
            return np.zeros((channels, 0), np.int8)
        # A free segment's energy depends on its neighbours' gains alone: the window is
        # the free segments and the last fixed one, so an encoder that solves as it goes
        # does a bounded amount of work per chunk, not one growing with the file.
        first = max(k - 1, 0)
        a = np.ones((channels, upto - first))
        if k:
            a[:, :k - first] = amplitudes(fixed[:, first:k])
        count = np.maximum(self._count[first:upto], 1.0)
        floor = FLOOR * count
        source = self._source[:, first:upto]
        # The energy each segment should come back with: the source's where it is well above
        # the floor; where both are near silence the decoded one, unchanged.
        decoded = self.energies(np.ones_like(a), first)
        target = decoded * (source + floor) / (decoded + floor)
        tiny = 1e-30 * count  # a segment decoded as digital silence keeps its gain
        lo, hi = amplitudes(LOWEST), amplitudes(HIGHEST)
        free = k - first
        for _ in range(ROUNDS):
            ratio = np.sqrt((target + tiny) / (self.energies(a, first) + tiny))
            a[:, free:] = np.clip(a[:, free:] * ratio[:, free:], lo, hi)
        steps = np.round(20.0 * np.log10(a[:, free:]) / STEP_DB)
        return np.clip(steps, LOWEST, HIGHEST).astype(np.int8)


def describe(gains: np.ndarray) -> str:
    """A one-line summary of gains, for `apcodec info`."""
    if gains.size == 0:
        return "no level segments"
    db = np.asarray(gains, np.float64) * STEP_DB
    return f"{db.min():+.2f} to {db.max():+.2f} dB, median {float(np.median(db)):+.2f} dB"

