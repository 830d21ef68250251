"""An independent reader and writer of version 2 chunk payloads, and a reader of whole
version 3 files with their level gains, from docs/format.md alone.

Plain Python integers, no numpy tricks and no constriction: tests compare it with
`entropy.py` word for word and with the package's reader and decoder, so the
specification in words and the implementation cannot drift apart.
"""

from __future__ import annotations

import math
import struct
import zlib

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


# ---- whole version 3 files -----------------------------------------------------------------


def _crc(seed: int, data: bytes) -> int:
    return zlib.crc32(data, zlib.crc32(struct.pack("<I", seed)))


def _unpack_bits(data: bytes, count: int, bits: int) -> list[int]:
    value, have, out = 0, 0, []
    for byte in data:
        value, have = (value << 8) | byte, have + 8
        while have >= bits and len(out) < count:
            have -= bits
            out.append((value >> have) & ((1 << bits) - 1))
    if len(out) != count or value & ((1 << have) - 1):
        raise ValueError("short chunk or padding bits set")
    return out


def read_v3(data: bytes, tables: dict | None) -> tuple[dict, list, list]:
    """A whole version 3 file -> (header fields, codes[channel][codebook][frame],
    gains[channel][segment] as signed steps). ValueError for anything invalid."""
    (magic, version, flags, length, rate, spf, books, bits, chunk, channels, src_rate,
     src_len, coded_len, weights, network, level_frames, n) = struct.unpack_from(
        "<4sBBHIHBBHHIQQ8s8sHB", data)
    if magic != b"\x89APC" or version != 3 or length != 63 + n:
        raise ValueError("not a version 3 header")
    if zlib.crc32(data[:59 + n]) != struct.unpack_from("<I", data, 59 + n)[0]:
        raise ValueError("header CRC")
    frames = -(-coded_len // spf) + (1 if flags & 1 and coded_len else 0)
    n_chunks, segments = -(-frames // chunk), -(-frames // level_frames)
    tail = data[-(4 * n_chunks + 8):]
    if tail[-4:] != b"\x89IDX":
        raise ValueError("no index mark")
    entries = list(struct.unpack_from(f"<{n_chunks}I", tail))
    if _crc(n_chunks, tail[:4 * n_chunks]) != struct.unpack_from("<I", tail, 4 * n_chunks)[0]:
        raise ValueError("index CRC")
    header = dict(version=version, flags=flags, sample_rate=rate, samples_per_frame=spf,
                  codebooks=books, bits=bits, chunk_frames=chunk, channels=channels,
                  source_rate=src_rate, source_length=src_len, coded_length=coded_len,
                  weights=weights, network=network, level_frames=level_frames,
                  model=data[59:59 + n].decode("ascii"), frames=frames, segments=segments)
    codes = [[[] for _ in range(books)] for _ in range(channels)]
    gains: list[list[int]] = [[] for _ in range(channels)]
    pos = length
    for i, entry in enumerate(entries):
        size, packed = entry & 0x7FFFFFFF, entry >> 31
        body = data[pos:pos + size]
        pos += size
        if _crc(i, body[:-4]) != struct.unpack_from("<I", body, size - 4)[0]:
            raise ValueError(f"chunk {i} CRC")
        first, end = i * chunk, min((i + 1) * chunk, frames)
        g = (-(-end // level_frames) - first // level_frames) * channels
        for k in range(0, g, channels):
            for c in range(channels):
                gains[c].append(body[k + c] - 256 if body[k + c] > 127 else body[k + c])
        payload = body[g:-4]
        if packed:
            flat = _unpack_bits(payload, (end - first) * channels * books, bits)
            for t in range(end - first):
                for c in range(channels):
                    for q in range(books):
                        codes[c][q].append(flat[(t * channels + c) * books + q])
        else:
            words = list(struct.unpack(f"<{len(payload) // 4}I", payload))
            chunk_codes = decode_chunk(words, tables, channels, end - first)
            for c in range(channels):
                for q in range(books):
                    codes[c][q] += chunk_codes[c][q]
    if pos != len(data) - len(tail):
        raise ValueError("chunks do not fill the file")
    return header, codes, gains


def gain(gains: list[int], segment_samples: int, t: int) -> float:
    """The amplitude factor of output sample t of one channel (docs/format.md)."""
    a = [10.0 ** (q * 0.25 / 20.0) for q in gains]
    m = len(a)
    if m == 1:
        return a[0]
    u = min(max((t + 0.5) / segment_samples - 0.5, 0.0), m - 1)
    j = min(math.floor(u), m - 2)
    w = u - j
    return (1.0 - w) * a[j] + w * a[j + 1]
