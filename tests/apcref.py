"""An independent reader and writer of version 2 chunk payloads, from docs/format.md alone.

Plain Python integers, no numpy tricks and no constriction: tests compare it with
`entropy.py` word for word, so the specification in words and the implementation cannot
drift apart.
"""

from __future__ import annotations

PRECISION = 24
MASK = (1 << 64) - 1


def cumulative(row: list[int]) -> list[int]:
    out, total = [0], 0
    for f in row:
        total += f
        out.append(total)
    return out


class Decoder:
    """The range decoder of docs/format.md."""

    def __init__(self, words: list[int]) -> None:
        self.words, self.pos = words, 0
        self.lower, self.range = 0, MASK
        self.point = (self._next() << 32) | self._next()

    def _next(self) -> int:
        self.pos += 1
        return self.words[self.pos - 1] if self.pos <= len(self.words) else 0

    def decode(self, row: list[int]) -> int:
        cum = cumulative(row)
        scale = self.range >> PRECISION
        q = ((self.point - self.lower) & MASK) // scale
        if q >= 1 << PRECISION:
            raise ValueError("invalid data")
        s = next(i for i in range(len(row)) if cum[i] <= q < cum[i + 1])
        self.lower = (self.lower + scale * cum[s]) & MASK
        self.range = scale * row[s]
        if self.range < 1 << 32:
            self.lower = (self.lower << 32) & MASK
            self.range <<= 32
            self.point = ((self.point << 32) & MASK) | self._next()
        return s

    def finished(self) -> bool:
        return self.pos >= len(self.words) and (self.point - self.lower) & MASK < (1 << 33) - 1


def encode_words(symbols: list[tuple[int, list[int]]]) -> list[int]:
    """The words of (symbol, frequency row) pairs, with unbounded integers."""
    low, rng, r = 0, MASK, 0
    for s, row in symbols:
        cum = cumulative(row)
        scale = rng >> PRECISION
        low += scale * cum[s]
        rng = scale * row[s]
        if rng < 1 << 32:
            low, rng, r = low << 32, rng << 32, r + 1
    bits = 64 + 32 * r
    x, u = low + (1 << 32) - 1, low + rng
    digit = lambda v, i: (v >> (bits - 32 * i)) & 0xFFFFFFFF  # noqa: E731 - digit i from 1
    words = [digit(x, i) for i in range(1, r + 2)]
    if digit(u, r + 1) == digit(x, r + 1):
        words.append(0)
    return words


def _rows(freq: list[list[int]], n_buckets: list[int]) -> list[int]:
    out, total = [], 0
    for n in n_buckets:
        out.append(total)
        total += 1 + n
    return out


def _plan(codes: list[int], k: int, lower: list[int] | None, tables: dict) -> list[tuple[int, int]]:
    """(frame, row) in coding order for codebook k; `lower` is codebook k-1's codes."""
    o = _rows(tables["frequencies"], tables["n_buckets"])[k]
    b = tables["buckets"][k]
    frames = range(len(codes) if lower is None else len(lower))
    if k == 0:
        return [(t, o if t == 0 else o + 1 + b[codes[t - 1]]) for t in frames]
    rows = [(t, o if t > 0 and lower[t] == lower[t - 1] else o + 1 + b[lower[t]]) for t in frames]
    return sorted(rows, key=lambda tr: (tr[1], tr[0]))


def encode_chunk(codes: list[list[list[int]]], tables: dict) -> list[int]:
    """codes[channel][codebook][frame] -> words."""
    repeat = len(tables["buckets"][0])
    freq = tables["frequencies"]
    pairs = []
    for channel in codes:
        for k, x in enumerate(channel):
            for t, row in _plan(x, k, channel[k - 1] if k else None, tables):
                symbol = repeat if t > 0 and x[t] == x[t - 1] else x[t]
                pairs.append((symbol, freq[row]))
    return encode_words(pairs)


def decode_chunk(words: list[int], tables: dict, channels: int, frames: int) -> list:
    """words -> codes[channel][codebook][frame]; ValueError for invalid data."""
    repeat = len(tables["buckets"][0])
    freq, n_codebooks = tables["frequencies"], len(tables["buckets"])
    o = _rows(freq, tables["n_buckets"])
    dec, out = Decoder(words), []
    for _ in range(channels):
        channel: list[list[int]] = []
        x = []
        for t in range(frames):  # codebook 0: row from the previous code, frame by frame
            row = o[0] if t == 0 else o[0] + 1 + tables["buckets"][0][x[t - 1]]
            s = dec.decode(freq[row])
            if s == repeat and t == 0:
                raise ValueError("repeat at frame 0")
            x.append(x[t - 1] if s == repeat else s)
        channel.append(x)
        for k in range(1, n_codebooks):
            symbols = [0] * frames
            for t, row in _plan([], k, channel[k - 1], tables):
                symbols[t] = dec.decode(freq[row])
            x = []
            for t, s in enumerate(symbols):
                if s == repeat and t == 0:
                    raise ValueError("repeat at frame 0")
                x.append(x[t - 1] if s == repeat else s)
            channel.append(x)
        out.append(channel)
    if not dec.finished():
        raise ValueError("words left over")
    return out
