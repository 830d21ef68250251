"""Format version 2: range-coded chunks, the chunk index, the golden file, damage."""

from __future__ import annotations

import dataclasses
import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import apcref
from apcodec_cli.io.bitstream import (
    INDEX_MARK, INDEX_PACKED, ApcError, ApcReader, ApcWriter, ChecksumError,
    CodeTablesMismatchError, Header, HeaderError, TrailingDataError, TruncatedError,
    read_apc, read_header, write_apc)
from apcodec_cli.io.entropy import CodeTables
from apcodec_cli.train.codetables import TableCounts

from apcdata import as_dict, fast, random_codes, random_tables, read_every_way
from golden import (GOLDEN_NETWORK, GOLDEN_V2_PATH, golden_tables, golden_v2_codes,
                    golden_v2_header)
from helpers import damage, edits, flip

FAST = fast(max_examples=50)
NETWORK = bytes(range(8))


def typical(seed: int, shape: tuple[int, int, int]) -> np.ndarray:
    """Codes like those TABLES were fitted to: long runs of 8 values of 32."""
    return random_codes(seed, shape, 5, hold=0.8, values=8)


def fitted_tables() -> CodeTables:
    counts = TableCounts(n_codebooks=3, alphabet=32, chunk_frames=4)
    counts.add(typical(99, (2, 3, 2000)))
    return counts.fit(n_buckets=2, smoothing=1.0)


TABLES = fitted_tables()
# 10 frames in chunks of 4, 4, 2; two channels of 3 codebooks of 5 bits.
SMALL = dict(sample_rate=48_000, samples_per_frame=10, n_codebooks=3, bits_per_code=5,
             chunk_frames=4, channels=2, source_sample_rate=44_100, source_length=90,
             coded_length=95, model_name="tiny", version=2, network_fingerprint=NETWORK,
             fingerprint=TABLES.weights_fingerprint(NETWORK))


def small(**changes: object) -> Header:
    return Header(**dict(SMALL, **changes))


def to_file(header: Header, codes: np.ndarray, tables=TABLES) -> bytes:
    buf = io.BytesIO()
    write_apc(buf, header, codes, tables)
    return buf.getvalue()


def reader(data: bytes, tables=TABLES) -> ApcReader:
    return ApcReader(io.BytesIO(data), tables)


def codes_for(header: Header, seed: int = 0) -> np.ndarray:
    return typical(seed, (header.channels, header.n_codebooks, header.n_frames))


def index_of(data: bytes, header: Header) -> list[int]:
    n = header.n_chunks
    return list(struct.unpack_from(f"<{n}I", data, len(data) - 8 - 4 * n))


# ---- header -----------------------------------------------------------------------------


def test_v2_header_layout() -> None:
    header = small()
    data = header.to_bytes()
    assert data[4] == 2 and len(data) == header.header_size == 61 + 4
    assert struct.unpack_from("<H", data, 6)[0] == 65
    assert data[40:48] == header.fingerprint and data[48:56] == NETWORK
    assert data[56] == 4 and data[57:61] == b"tiny"
    assert Header.from_bytes(data) == header == read_header(io.BytesIO(data + b"more"))


@pytest.mark.parametrize("change", [
    dict(network_fingerprint=None), dict(network_fingerprint=b"short"),
    dict(version=1), dict(version=3), dict(version=True), dict(live=True, coded_length=0,
                                                               source_length=0),
])
def test_v2_header_rejects_bad_fields(change: dict) -> None:
    with pytest.raises(HeaderError):
        small(**change)


def test_v2_geometry_lives_in_the_index() -> None:
    with pytest.raises(ValueError, match="chunk index"):
        small().file_size  # noqa: B018 - a property that raises
    assert small().chunk_size(2) == (2 * 2 * 3 * 5 + 7) // 8 + 4


# ---- writing and reading ------------------------------------------------------------------


@FAST
@given(st.lists(st.integers(0, 12), max_size=12), st.integers(0, 2**32 - 1))
def test_round_trip_in_pieces(pieces: list[int], seed: int) -> None:
    header = small(coded_length=10 * sum(pieces))
    codes = codes_for(header, seed)
    buf = io.BytesIO()
    with ApcWriter(buf, header, TABLES) as writer:
        pos = 0
        for size in pieces:
            writer.write(codes[:, :, pos:pos + size])
            pos += size
    assert buf.getvalue() == to_file(header, codes)
    got = reader(buf.getvalue())
    np.testing.assert_array_equal(got.read_all(), codes)
    assert got.verify() == []
    if header.n_frames:
        start = seed % header.n_frames
        np.testing.assert_array_equal(got.read_frames(start, header.n_frames),
                                      codes[:, :, start:])


def test_index_flags_and_sizes() -> None:
    header = small(coded_length=400)  # 40 frames, 10 chunks
    codes = codes_for(header)
    codes[:, :, 8:12] = np.random.default_rng(1).integers(0, 32, (2, 3, 4))  # noise
    codes[:, :, 12:16] = 3  # one held code: tiny when range-coded
    data = to_file(header, codes)
    entries = index_of(data, header)
    sizes = [e & ~INDEX_PACKED for e in entries]
    assert sum(sizes) + header.header_size + 4 * 10 + 8 == len(data)
    assert entries[2] & INDEX_PACKED and sizes[2] == header.chunk_size(2)  # frames 8..11
    assert not entries[3] & INDEX_PACKED and sizes[3] == 8  # one word and the CRC
    assert data.endswith(INDEX_MARK)
    r = reader(data)
    assert [r.chunk_bytes(i) for i in range(10)] == sizes


def test_zero_length_file() -> None:
    header = small(coded_length=0, source_length=0)
    data = to_file(header, np.zeros((2, 3, 0), dtype=np.int64))
    assert len(data) == header.header_size + 8
    assert read_apc(data, TABLES)[1].shape == (2, 3, 0)


def test_tables_must_match_the_header() -> None:
    other = random_tables(6, n_codebooks=3, bits=5, n_buckets=(2, 2, 2))
    data = to_file(small(), codes_for(small()))
    with pytest.raises(CodeTablesMismatchError, match="other code tables"):
        reader(data, other)
    with pytest.raises(CodeTablesMismatchError):
        ApcWriter(io.BytesIO(), small(), other)
    with pytest.raises(CodeTablesMismatchError, match="none are loaded"):
        ApcWriter(io.BytesIO(), small(), None)
    with pytest.raises(CodeTablesMismatchError, match="version 1"):
        ApcWriter(io.BytesIO(), dataclasses.replace(small(), version=1,
                                                    network_fingerprint=None), TABLES)
    wrong_size = random_tables(6, n_codebooks=2, bits=5, n_buckets=(3, 2))
    header = small(n_codebooks=2, fingerprint=wrong_size.weights_fingerprint(NETWORK))
    with pytest.raises(CodeTablesMismatchError, match="3 codebooks|2 codebooks"):
        ApcWriter(io.BytesIO(), dataclasses.replace(header, bits_per_code=4), wrong_size)


def test_without_tables_the_checksums_still_verify() -> None:
    header = small(coded_length=400)
    codes = codes_for(header)
    codes[:, :, :4] = np.random.default_rng(1).integers(0, 32, (2, 3, 4))  # chunk 0 packed
    plain = reader(to_file(header, codes), None)
    assert plain.verify() == []
    np.testing.assert_array_equal(plain.read_chunk(0), codes[:, :, :4])
    with pytest.raises(CodeTablesMismatchError, match="chunk 1 .* range-coded"):
        plain.read_chunk(1)


# ---- the golden file --------------------------------------------------------------------


def test_golden_v2_file_keeps_decoding_to_the_same_codes() -> None:
    data = GOLDEN_V2_PATH.read_bytes()
    header, codes = read_apc(data, golden_tables())
    assert header == golden_v2_header()
    assert header.network_fingerprint == GOLDEN_NETWORK
    np.testing.assert_array_equal(codes, golden_v2_codes())
    entries = index_of(data, header)
    assert [bool(e & INDEX_PACKED) for e in entries] == [False, True, False]
    assert to_file(header, codes, golden_tables()) == data  # the writer is stable too


def test_golden_tables_fingerprints() -> None:
    tables = golden_tables()
    assert tables.fingerprint.hex() == "8df1c0b9b51d2785"
    assert tables.weights_fingerprint(GOLDEN_NETWORK).hex() == "7979eebc781ea477"


def test_golden_v2_chunks_read_by_the_specification_alone() -> None:
    data = GOLDEN_V2_PATH.read_bytes()
    header = golden_v2_header()
    entries = index_of(data, header)
    offset = header.header_size
    for i, entry in enumerate(entries):
        size = entry & ~INDEX_PACKED
        if not entry & INDEX_PACKED:
            start, stop = header.chunk_frame_range(i)
            words = list(struct.unpack_from(f"<{size // 4 - 1}I", data, offset))
            got = apcref.decode_chunk(words, as_dict(golden_tables()), 2, stop - start)
            assert got == golden_v2_codes()[:, :, start:stop].tolist()
        offset += size


# ---- damage -----------------------------------------------------------------------------

GOOD_HEADER = small(coded_length=400)
GOOD = to_file(GOOD_HEADER, codes_for(GOOD_HEADER))


@pytest.mark.parametrize("cut", [1, 4, 8, 9, 30, len(GOOD) - 70, len(GOOD) - 64])
def test_truncation(cut: int) -> None:
    with pytest.raises(TruncatedError):
        reader(GOOD[:-cut])


def test_appended_bytes_and_a_gap_before_the_index() -> None:
    with pytest.raises(TruncatedError, match="appended"):
        reader(GOOD + b"\x00")
    tail = 4 * GOOD_HEADER.n_chunks + 8
    with pytest.raises(TrailingDataError, match="between"):
        reader(GOOD[:-tail] + b"\x00\x00" + GOOD[-tail:])


def test_damaged_index() -> None:
    data = bytearray(GOOD)
    data[-12] ^= 0x01  # the index CRC
    with pytest.raises(ChecksumError, match="chunk index") as info:
        reader(bytes(data))
    assert info.value.chunk is None


def test_invalid_index_entry_with_a_valid_crc() -> None:
    n = GOOD_HEADER.n_chunks
    entries = index_of(GOOD, GOOD_HEADER)
    entries[0] = 5  # not a whole number of words
    body = struct.pack(f"<{n}I", *entries)
    crc = zlib.crc32(body, zlib.crc32(struct.pack("<I", n)))
    data = GOOD[:-8 - 4 * n] + body + struct.pack("<I", crc) + INDEX_MARK
    with pytest.raises(ApcError, match="entry 0"):
        reader(data)


def test_flipped_chunk_byte_names_the_chunk() -> None:
    first = GOOD_HEADER.header_size + (index_of(GOOD, GOOD_HEADER)[0] & ~INDEX_PACKED)
    problems = reader(flip(GOOD, first + 1, 0x10)).verify()
    assert [p.chunk for p in problems] == [1]  # type: ignore[attr-defined]
    assert str(problems[0]).startswith("chunk 1 (") and "checksum mismatch" in str(problems[0])


def forge_crc(data: bytes, header: Header, index: int) -> bytes:
    """Recompute chunk `index`'s CRC, so that damage reaches the range decoder."""
    entries = index_of(data, header)
    offset = header.header_size + sum(e & ~INDEX_PACKED for e in entries[:index])
    size = entries[index] & ~INDEX_PACKED
    payload = data[offset:offset + size - 4]
    crc = zlib.crc32(payload, zlib.crc32(struct.pack("<I", index)))
    return data[:offset + size - 4] + struct.pack("<I", crc) + data[offset + size:]


def exercise(data: bytes) -> None:
    """`read_every_way`, and codes of the header's shape when the file reads cleanly."""
    read = read_every_way(reader, data)
    if read is not None:
        r, codes = read
        assert codes.shape == (2, 3, r.header.n_frames)


@FAST
@given(st.integers(0, GOOD_HEADER.n_chunks - 1), st.integers(0, 10_000),
       st.integers(1, 255))
def test_fuzz_payload_damage_behind_a_valid_crc(index: int, pos: int, value: int) -> None:
    """The range decoder itself meets damaged words: it reports them or decodes some
    codes, but never crashes or hangs."""
    entries = index_of(GOOD, GOOD_HEADER)
    if entries[index] & INDEX_PACKED:
        return
    offset = GOOD_HEADER.header_size + sum(e & ~INDEX_PACKED for e in entries[:index])
    at = offset + pos % ((entries[index] & ~INDEX_PACKED) - 4)
    exercise(forge_crc(flip(GOOD, at, value), GOOD_HEADER, index))


@FAST
@given(edits(len(GOOD)))
def test_fuzz_mutated_files(changes: list[tuple[str, int, int]]) -> None:
    exercise(damage(GOOD, changes))


@FAST
@given(st.binary(max_size=200))
def test_fuzz_arbitrary_bytes_after_a_v2_header(tail: bytes) -> None:
    exercise(GOOD[:GOOD_HEADER.header_size] + tail)
    exercise(GOOD[:GOOD_HEADER.header_size] + tail + INDEX_MARK)
