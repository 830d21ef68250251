"""The range-coded payload (entropy.py) and the estimation of its tables (train/codetables.py):
exact integer tables, agreement with an independent implementation of docs/format.md,
round trips, rejection of invalid data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import apcref
from apcodec_cli.format.entropy import TOTAL, CodeTables
from apcodec_cli.train.codetables import TableCounts, quantise

from apcdata import as_dict, fast, random_codes, random_tables

FAST = fast(max_examples=40)


def words(data: bytes) -> list[int]:
    return np.frombuffer(data, dtype="<u4").tolist()


@FAST
@given(st.integers(0, 2**32 - 1), st.integers(1, 2), st.integers(1, 40))
def test_words_match_the_specification(seed: int, channels: int, frames: int) -> None:
    """constriction's output, from our integer tables, is word for word what the plain
    integer coder of docs/format.md (tests/apcref.py) writes, and reads back both ways."""
    tables = random_tables(seed)
    codes = random_codes(seed, (channels, tables.n_codebooks, frames), 4)
    data = tables.encode(codes)
    assert words(data) == apcref.encode_chunk(codes.tolist(), as_dict(tables))
    assert apcref.decode_chunk(words(data), as_dict(tables), channels, frames) == codes.tolist()
    np.testing.assert_array_equal(tables.decode(data, channels, frames), codes)


def test_full_size_chunk_matches_the_specification() -> None:
    tables = random_tables(7, n_codebooks=4, bits=10, n_buckets=(8, 4, 4, 2))
    codes = random_codes(7, (2, 4, 150), 10)
    codes[0, 0, :5] = np.argmin(tables.frequencies[0][:1024])  # a frequency-1 symbol
    data = tables.encode(codes)
    assert apcref.decode_chunk(words(data), as_dict(tables), 2, 150) == codes.tolist()
    np.testing.assert_array_equal(tables.decode(data, 2, 150), codes)


@pytest.mark.parametrize("change, match", [
    (lambda f, b: (f[:, :-1], b), "frequencies must be"),
    (lambda f, b: (f + (np.arange(f.shape[1]) == 0), b), "sum"),
    (lambda f, b: (f.astype(float), b), "integer"),
    (lambda f, b: (f, b + 5), "bucket"),
    (lambda f, b: (f, b[:, :-1]), "buckets must be"),
])
def test_invalid_tables_are_refused(change, match: str) -> None:
    tables = random_tables(0, n_buckets=(2, 2, 2))
    freq, buckets = change(tables.frequencies.copy(), tables.buckets.copy())
    with pytest.raises(ValueError, match=match):
        CodeTables(freq, buckets, tables.n_buckets)


def test_zero_frequency_is_refused() -> None:
    tables = random_tables(0, n_buckets=(2, 2, 2))
    freq = tables.frequencies.copy()
    freq[0, 0], freq[0, 1] = 0, freq[0, 1] + freq[0, 0]
    with pytest.raises(ValueError, match=">= 1"):
        CodeTables(freq, tables.buckets, tables.n_buckets)


def test_arrays_round_trip_and_tables_are_read_only() -> None:
    tables = random_tables(3)
    again = CodeTables.from_arrays(tables.to_arrays())
    assert again.fingerprint == tables.fingerprint
    with pytest.raises(ValueError):
        tables.frequencies[0, 0] = 5
    with pytest.raises(ValueError, match="need"):
        CodeTables.from_arrays({"frequencies": tables.frequencies})


@FAST
@given(st.binary(min_size=1, max_size=64), st.integers(1, 20))
def test_garbage_decodes_to_codes_or_a_value_error(data: bytes, frames: int) -> None:
    tables = random_tables(1)
    try:
        codes = tables.decode(data, 2, frames)
    except ValueError:
        return
    assert codes.shape == (2, 3, frames) and codes.min() >= 0 and codes.max() < 16


def test_a_chunk_starting_with_a_repeat_is_invalid() -> None:
    tables = random_tables(2, n_buckets=(1, 1, 1))
    repeat = [(16, tables.frequencies[0].tolist())]  # codebook 0, frame 0: REPEAT
    data = np.array(apcref.encode_words(repeat * 3), dtype="<u4").tobytes()
    with pytest.raises(ValueError, match="starts with a repeat"):
        tables.decode(data, 1, 3)


# ---- estimation -----------------------------------------------------------------------------


def test_quantise_keeps_every_symbol_and_the_total() -> None:
    rows = quantise(np.array([[0.0, 0.0, 1.0, 3.0], [1e-30, 1.0, 1.0, 1.0]]))
    assert (rows.sum(axis=1) == TOTAL).all() and rows.min() >= 1
    assert rows[0, 3] == pytest.approx(3 * rows[0, 2], rel=1e-4)


def test_fitted_tables_code_structured_codes_in_fewer_bits() -> None:
    rng = np.random.default_rng(0)
    counts = TableCounts(n_codebooks=2, alphabet=16, chunk_frames=200)
    train = []
    for _ in range(20):  # codebook 1 follows codebook 0; both hold their value a while
        base = np.repeat(rng.integers(0, 8, 40), 5)[None]
        train.append(np.stack([base, (base * 2 + (rng.random(base.shape) < 0.1)) % 16], 1))
        counts.add(train[-1])
    assert counts.frames == 20 * 200
    tables = counts.fit(n_buckets=4, smoothing=1.0)
    assert tables.n_buckets == (4, 4) and tables.frequencies.shape == (10, 17)
    test = train[0]
    data = tables.encode(test)
    assert len(data) * 8 < 0.4 * test.size * 4  # bit-packed: 4 bits a code
    np.testing.assert_array_equal(tables.decode(data, 1, 200), test)
    unseen = np.full((1, 2, 50), 15)  # codes never seen in training still code
    np.testing.assert_array_equal(tables.decode(tables.encode(unseen), 1, 50), unseen)


def test_fit_needs_codes() -> None:
    with pytest.raises(ValueError, match="no codes"):
        TableCounts(2, 16).fit()
