"""Range coding of code frames with integer frequency tables (format versions 2 and 3).

A chunk's codes are coded on their own (random access stays), channel by channel, and
within a channel codebook by codebook, with a small context model whose tables are stored
with the weights (estimated from training data by `train/codetables.py`). The model, in
words (docs/format.md has it byte by byte):

- **Repeats.** A code equal to the same codebook's code one frame earlier in the chunk is
  coded as the extra symbol REPEAT = 2**bits (about a third of all codes on real audio).
- **Codebook 0** is coded frame by frame; its context is its own code one frame earlier,
  through a bucket map (2**bits codes -> n_buckets), or "none" in a chunk's first frame.
- **Codebook k >= 1** is coded after codebook k-1; its context is codebook k-1's code in the
  same frame through codebook k's bucket map, or "none" where that code was a repeat.
  Frames are coded grouped by table (tables in increasing order, frames in increasing
  order within a table), so a decoder needs one call per table, not one per code.

Every context selects one row of integer frequencies: 2**bits + 1 entries, each at least 1
(every symbol stays codable), summing to 2**24. The coder is `constriction`'s range coder
(32-bit words, 64-bit state, 24-bit probabilities), whose arithmetic is integer-only; the
frequencies are handed to it in a form its model construction reproduces exactly (see
`_model`), so files decode the same on every platform. Numpy and constriction only.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import struct

import constriction
import numpy as np

from .header import CodeTablesMismatchError

PRECISION = 24
TOTAL = 1 << PRECISION
_FINGERPRINT_TAG = b"apcodec code tables 1\x00"
_WEIGHTS_TAG = b"apcodec weights with code tables 1\x00"


@dataclasses.dataclass(frozen=True, eq=False)
class CodeTables:
    """The context model's integer tables (see the module docstring).

    Attributes:
        frequencies: (n_tables, 2**bits + 1) integers >= 1, each row summing to 2**24.
            Codebook k owns 1 + n_buckets[k] consecutive rows, codebook 0's first: its
            "none" row, then one row per bucket.
        buckets: (n_codebooks, 2**bits) bucket of each context code, < n_buckets[k].
        n_buckets: Buckets of each codebook.

    Raises:
        ValueError: Inconsistent shapes, or frequencies that are not valid tables.
    """

    frequencies: np.ndarray
    buckets: np.ndarray
    n_buckets: tuple[int, ...]

    def __post_init__(self) -> None:
        freq = _integers(self.frequencies, 2, "frequencies")
        buckets = _integers(self.buckets, 2, "buckets")
        n_buckets = tuple(int(n) for n in self.n_buckets)
        k, alphabet = buckets.shape
        if not 1 <= k <= 64 or alphabet < 2 or alphabet & (alphabet - 1) or alphabet > 1 << 16:
            raise ValueError(f"buckets must be (codebooks, 2**bits), got {buckets.shape}")
        if len(n_buckets) != k or not all(1 <= n <= alphabet for n in n_buckets):
            raise ValueError(f"n_buckets must give 1..{alphabet} buckets for each of {k} "
                             f"codebooks, got {n_buckets}")
        if (buckets < 0).any() or (buckets >= np.array(n_buckets)[:, None]).any():
            raise ValueError("a bucket map names a bucket beyond its codebook's n_buckets")
        rows = sum(1 + n for n in n_buckets)
        if freq.shape != (rows, alphabet + 1):
            raise ValueError(f"frequencies must be {(rows, alphabet + 1)}, got {freq.shape}")
        if freq.min() < 1 or (freq.sum(axis=1) != TOTAL).any():
            raise ValueError(f"every frequency must be >= 1 and every row sum to 2**{PRECISION}")
        for name, value in (("frequencies", freq), ("buckets", buckets)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "n_buckets", n_buckets)

    # ---- identity ---------------------------------------------------------------------------

    @property
    def n_codebooks(self) -> int:
        return self.buckets.shape[0]

    @property
    def alphabet(self) -> int:
        """Codes per codebook, 2**bits; the REPEAT symbol is this number."""
        return self.buckets.shape[1]

    @functools.cached_property
    def fingerprint(self) -> bytes:
        """8 bytes identifying the tables: SHA-256 of their canonical bytes (docs/format.md)."""
        digest = hashlib.sha256(_FINGERPRINT_TAG)
        digest.update(struct.pack("<BBI", PRECISION, self.n_codebooks, self.alphabet))
        digest.update(np.asarray(self.n_buckets, dtype="<u4").tobytes())
        digest.update(self.buckets.astype("<u4").tobytes())
        digest.update(self.frequencies.astype("<u4").tobytes())
        return digest.digest()[:8]

    def weights_fingerprint(self, network: bytes) -> bytes:
        """The fingerprint of weights made of the network with fingerprint `network` and
        these tables: SHA-256 of a tag, the network's and the tables' fingerprints."""
        return hashlib.sha256(_WEIGHTS_TAG + bytes(network) + self.fingerprint).digest()[:8]

    def check_geometry(self, n_codebooks: int, bits_per_code: int) -> None:
        """Raise CodeTablesMismatchError unless the tables code this many codebooks of
        this many bits."""
        if (n_codebooks, 1 << bits_per_code) != (self.n_codebooks, self.alphabet):
            raise CodeTablesMismatchError(
                f"the code tables are for {self.n_codebooks} codebooks of {self.alphabet} "
                f"codes, the file has {n_codebooks} of {1 << bits_per_code}")

    # ---- storage ------------------------------------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The tables as plain integer arrays (how a weights file stores them)."""
        return {"frequencies": self.frequencies.astype(np.int32),
                "buckets": self.buckets.astype(np.int32),
                "n_buckets": np.asarray(self.n_buckets, dtype=np.int32)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> CodeTables:
        """Inverse of `to_arrays`. Raises ValueError for missing or invalid arrays."""
        try:
            return cls(np.asarray(arrays["frequencies"]), np.asarray(arrays["buckets"]),
                       tuple(np.asarray(arrays["n_buckets"]).tolist()))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"code tables need frequencies, buckets and n_buckets: {exc}"
                             ) from None

    # ---- coding -----------------------------------------------------------------------------

    @functools.cached_property
    def _offsets(self) -> np.ndarray:
        """First table row of each codebook."""
        return np.cumsum([0] + [1 + n for n in self.n_buckets[:-1]])

    @functools.cached_property
    def _models(self) -> list:
        return [_model(row) for row in self.frequencies]

    @functools.cached_property
    def _first_models(self) -> tuple[object, list]:
        """Codebook 0's models: the "none" one, and the one for each previous code."""
        models, none = self._models, int(self._offsets[0])
        return models[none], [models[none + 1 + b] for b in self.buckets[0].tolist()]

    def _tables(self, k: int, context: np.ndarray) -> np.ndarray:
        """Table rows for codebook k given context codes (-1: none)."""
        return self._offsets[k] + np.where(
            context < 0, 0, 1 + self.buckets[k][np.maximum(context, 0)])

    def encode(self, codes: np.ndarray) -> bytes:
        """Range-code one chunk: int codes (channels, n_codebooks, frames) -> the coder's
        32-bit words as little-endian bytes."""
        encoder, models = constriction.stream.queue.RangeEncoder(), self._models
        for channel in np.asarray(codes, dtype=np.int64):
            symbols, context = symbols_and_contexts(channel, self.alphabet)
            opening, following = self._first_models
            encoder.encode(int(symbols[0, 0]), opening)
            for symbol, previous in zip(symbols[0, 1:].tolist(), context[0, 1:].tolist()):
                encoder.encode(symbol, following[previous])
            for k in range(1, self.n_codebooks):
                order, groups = _groups(self._tables(k, context[k]))
                grouped = symbols[k][order].astype(np.int32)
                for table, start, stop in groups:
                    encoder.encode(grouped[start:stop], models[table])
        return encoder.get_compressed().astype("<u4").tobytes()

    def decode(self, data: bytes, channels: int, frames: int) -> np.ndarray:
        """Inverse of `encode`: (channels, n_codebooks, frames) int64 codes.

        Raises:
            ValueError: `data` is no valid output of `encode` for this many codes.
        """
        if len(data) % 4 or not data:
            raise ValueError("range-coded data must be whole 32-bit words")
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        decoder = constriction.stream.queue.RangeDecoder(words)
        out = np.empty((channels, self.n_codebooks, frames), dtype=np.int64)
        try:
            for channel in out:
                self._decode_channel(decoder, channel)
        except (AssertionError, RuntimeError, OverflowError) as exc:  # constriction's errors
            raise ValueError(f"invalid range-coded data ({exc})".splitlines()[0]) from None
        if not decoder.maybe_exhausted():
            raise ValueError("invalid range-coded data: words are left over")
        return out

    def _decode_channel(self, decoder: object, out: np.ndarray) -> None:
        """Decode one channel's (n_codebooks, frames) codes into `out`."""
        models, repeat, frames = self._models, self.alphabet, out.shape[1]
        opening, following = self._first_models
        previous = decoder.decode(opening)
        if previous == repeat:
            raise ValueError("invalid range-coded data: a chunk starts with a repeat")
        first = [previous]
        for _ in range(frames - 1):
            symbol = decoder.decode(following[previous])
            if symbol != repeat:
                previous = symbol
            first.append(previous)
        out[0] = first
        for k in range(1, self.n_codebooks):
            lower = out[k - 1]
            order, groups = _groups(self._tables(k, np.where(_repeats(lower), -1, lower)))
            grouped = np.empty(frames, dtype=np.int64)
            for table, start, stop in groups:
                grouped[start:stop] = decoder.decode(models[table], stop - start)
            symbols = np.empty(frames, dtype=np.int64)
            symbols[order] = grouped
            out[k] = _resolve_repeats(symbols, repeat)


def symbols_and_contexts(codes: np.ndarray, alphabet: int) -> tuple[np.ndarray, np.ndarray]:
    """One chunk of one channel, codes (n_codebooks, frames) -> (symbols, context codes).

    Symbols are the codes with repeats replaced by REPEAT = `alphabet`; context codes are
    codebook 0's previous code and codebook k-1's code for codebook k, -1 for "none".
    """
    repeats = _repeats(codes)
    symbols = np.where(repeats, alphabet, codes)
    context = np.empty_like(codes)
    context[0, 0] = -1
    context[0, 1:] = codes[0, :-1]
    context[1:] = np.where(repeats[:-1], -1, codes[:-1])
    return symbols, context


def _repeats(codes: np.ndarray) -> np.ndarray:
    """Where a code equals the code one frame earlier (along the last axis)."""
    out = np.zeros(codes.shape, dtype=bool)
    out[..., 1:] = codes[..., 1:] == codes[..., :-1]
    return out


def _resolve_repeats(symbols: np.ndarray, repeat: int) -> np.ndarray:
    """Symbols with REPEATs -> codes: each REPEAT takes the last code before it."""
    literal = symbols != repeat
    if not literal[0]:
        raise ValueError("invalid range-coded data: a chunk starts with a repeat")
    source = np.maximum.accumulate(np.where(literal, np.arange(len(symbols)), 0))
    return symbols[source]


def _groups(tables: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Frames sorted by table (stably: in increasing order within a table), and the
    (table, start, stop) of each table's run in that order, in table order."""
    order = np.argsort(tables, kind="stable")
    runs = tables[order]
    starts = np.flatnonzero(np.diff(runs)) + 1
    bounds = [0, *starts.tolist(), len(runs)]
    return order, list(zip(runs[bounds[:-1]].tolist(), bounds[:-1], bounds[1:]))


def _model(frequencies: np.ndarray) -> object:
    """A constriction model coding exactly these integer frequencies (>= 1, sum 2**24).

    constriction (perfect=False) gives symbol i the left cumulative
    floor(scale * (p_0 + ... + p_{i-1})) + i, scale = (2**24 - n) / sum(p), so that every
    symbol keeps at least 1. With p_i = f_i - 1 the sum is 2**24 - n, scale is exactly 1
    and every partial sum an integer below 2**24, exact in floating point: the left
    cumulative is f_0 + ... + f_{i-1}, the integer table itself (tests/test_entropy.py
    checks this against an independent integer decoder).
    """
    shifted = (np.asarray(frequencies, dtype=np.int64) - 1).astype(np.float64)
    return constriction.stream.model.Categorical(shifted, perfect=False)


def _integers(value: object, ndim: int, name: str) -> np.ndarray:
    arr = np.array(value)  # a copy: the tables own their arrays
    if arr.ndim != ndim or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must be a {ndim}-D integer array")
    return arr.astype(np.int64)
