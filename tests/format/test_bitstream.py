"""Properties of the `.apc` bitstream: round trips, exact sizes, and damage detection."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from apcodec_cli.format.bitstream import (
    ApcError,
    ApcReader,
    ApcWriter,
    BadMagicError,
    ChecksumError,
    Header,
    HeaderError,
    TrailingDataError,
    TruncatedError,
    UnsupportedVersionError,
    WeightsMismatchError,
    decode_chunk,
    encode_chunk,
    pack_codes,
    read_apc,
    read_header,
    unpack_codes,
    write_apc,
)

from apcdata import fast, read_every_way
from helpers import damage, edits, flip

FAST = fast(max_examples=60)
DEFAULTS = dict(
    sample_rate=48_000, samples_per_frame=320, n_codebooks=4, bits_per_code=10,
    chunk_frames=150, channels=1, source_sample_rate=44_100, source_length=3 * 44_100,
    coded_length=3 * 48_000, fingerprint=bytes(range(8)), model_name="apcodec-48k",
)
# Small geometry with a padded last chunk: 10 frames in chunks of 4, 4, 2;
# 19-byte full chunks and a 12-byte last chunk whose final byte carries 4 padding bits.
SMALL = dict(DEFAULTS, samples_per_frame=10, n_codebooks=3, bits_per_code=5, chunk_frames=4,
             channels=2, coded_length=95, model_name="tiny")


def make_header(**changes: object) -> Header:
    return Header(**dict(DEFAULTS, **changes))


def random_codes(header: Header, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (header.channels, header.n_codebooks, header.n_frames)
    return rng.integers(0, 1 << header.bits_per_code, size=shape)


def to_file(header: Header, codes: np.ndarray) -> bytes:
    buf = io.BytesIO()
    write_apc(buf, header, codes)
    return buf.getvalue()


def fix_header_crc(data: bytes) -> bytes:
    """Recompute the header CRC so that a deliberate field change passes the checksum."""
    end = 49 + data[48]
    return data[:end] + struct.pack("<I", zlib.crc32(data[:end])) + data[end + 4 :]


def open_reader(data: bytes) -> ApcReader:
    return ApcReader(io.BytesIO(data))


# --- bit packing -------------------------------------------------------------------


@FAST
@given(st.integers(1, 16).flatmap(
    lambda b: st.tuples(st.just(b), st.lists(st.integers(0, (1 << b) - 1), max_size=200))))
def test_pack_unpack_round_trip(case: tuple[int, list[int]]) -> None:
    bits, values = case
    packed = pack_codes(np.array(values, dtype=np.int64), bits)
    assert len(packed) == (len(values) * bits + 7) // 8
    np.testing.assert_array_equal(unpack_codes(packed, len(values), bits), values)


def test_pack_is_msb_first_and_zero_padded() -> None:
    assert pack_codes(np.array([1, 2, 3]), 2) == bytes([0b01101100])
    assert pack_codes(np.array([1023]), 10) == b"\xff\xc0"
    assert pack_codes(np.array([1, 0]), 16) == b"\x00\x01\x00\x00"
    assert pack_codes(np.array([], dtype=np.int64), 10) == b""


def test_pack_exact_byte_count_for_one_second() -> None:
    values = np.random.default_rng(1).integers(0, 1024, size=4 * 150)
    assert len(pack_codes(values, 10)) == 750


@pytest.mark.parametrize("values", [[-1], [1024], [0, 5000]])
def test_pack_rejects_out_of_range(values: list[int]) -> None:
    with pytest.raises(ValueError):
        pack_codes(np.array(values), 10)


def test_pack_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        pack_codes(np.array([0.5]), 10)
    with pytest.raises(ValueError):
        pack_codes(np.array([1]), 17)
    with pytest.raises(ValueError):
        unpack_codes(b"\x00", 2, 10)


# --- header --------------------------------------------------------------------------

headers = st.builds(
    Header,
    sample_rate=st.integers(1, 1_000_000), samples_per_frame=st.integers(1, 0xFFFF),
    n_codebooks=st.integers(1, 64), bits_per_code=st.integers(1, 16),
    chunk_frames=st.integers(1, 0xFFFF), channels=st.integers(1, 1024),
    source_sample_rate=st.integers(1, 1_000_000), source_length=st.integers(0, 2**48),
    coded_length=st.integers(0, 2**48), fingerprint=st.binary(min_size=8, max_size=8),
    model_name=st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=64),
    streamable=st.booleans(),
)


@FAST
@given(headers)
def test_header_round_trip(header: Header) -> None:
    data = header.to_bytes()
    assert len(data) == header.header_size == 53 + len(header.model_name)
    assert Header.from_bytes(data) == header
    assert read_header(io.BytesIO(data + b"rest")) == header


def test_header_layout_and_streamable_flag() -> None:
    data = make_header(streamable=True).to_bytes()
    assert data[:4] == b"\x89APC" and data[4] == 1 and data[5] == 1
    assert struct.unpack_from("<H", data, 6)[0] == len(data) == 64
    assert struct.unpack_from("<IHBBHH", data, 8) == (48_000, 320, 4, 10, 150, 1)
    assert data[40:48] == bytes(range(8)) and data[49:60] == b"apcodec-48k"


@pytest.mark.parametrize("change", [
    dict(sample_rate=0), dict(sample_rate=1_000_001), dict(samples_per_frame=0),
    dict(n_codebooks=65), dict(bits_per_code=17), dict(chunk_frames=0), dict(channels=0),
    dict(channels=1025), dict(coded_length=2**48 + 1), dict(source_length=-1),
    dict(fingerprint=b"short"), dict(model_name=""), dict(model_name="x" * 65),
    dict(model_name="caf\u00e9"), dict(model_name="a\nb"), dict(channels=1.0),
])
def test_header_rejects_bad_fields(change: dict[str, object]) -> None:
    with pytest.raises(HeaderError):
        make_header(**change)


def test_sixty_seconds_mono_size() -> None:
    header = make_header(coded_length=60 * 48_000, source_length=60 * 44_100)
    data = to_file(header, random_codes(header))
    assert header.n_frames == 9000 and header.n_chunks == 60 and header.chunk_size(0) == 754
    assert len(data) == header.file_size == 64 + 60 * 754 == 45_304
    assert len(data) <= 60 * 6100 / 8
    assert header.nominal_bitrate == 6000.0 and header.duration == 60.0
    assert len(data) * 8 / 60 / 1000 == pytest.approx(6.0405, abs=1e-4)  # kbit/s, all-in


def test_geometry_of_a_partial_last_chunk() -> None:
    header = Header(**SMALL)
    assert header.n_frames == 10 and header.n_chunks == 3
    assert [header.chunk_frame_range(i) for i in range(3)] == [(0, 4), (4, 8), (8, 10)]
    assert [header.chunk_size(i) for i in range(3)] == [19, 19, 12]
    assert header.chunk_offset(2) == header.header_size + 38
    with pytest.raises(IndexError):
        header.chunk_frame_range(3)


# --- writer and reader -------------------------------------------------------------


@FAST
@given(st.lists(st.integers(0, 12), max_size=30), st.integers(0, 2**32 - 1))
def test_writer_pieces_match_one_write(pieces: list[int], seed: int) -> None:
    header = Header(**dict(SMALL, coded_length=10 * sum(pieces)))
    codes = random_codes(header, seed)
    buf = io.BytesIO()
    with ApcWriter(buf, header) as writer:
        pos = 0
        for size in pieces:
            writer.write(codes[:, :, pos : pos + size])
            pos += size
    assert buf.getvalue() == to_file(header, codes)
    np.testing.assert_array_equal(read_apc(buf.getvalue())[1], codes)


def test_writer_frame_count_errors() -> None:
    header = Header(**SMALL)
    codes = random_codes(header)
    with pytest.raises(ApcError, match="too many"):
        ApcWriter(io.BytesIO(), header).write(np.concatenate([codes, codes], axis=2))
    writer = ApcWriter(io.BytesIO(), header)
    writer.write(codes[:, :, :5])
    with pytest.raises(ApcError, match="5 code frames"):
        writer.close()
    writer.close()  # a second close is a no-op


@pytest.mark.parametrize("shape", [(2, 3), (1, 3, 4), (2, 4, 4), (2, 3, 4, 1)])
def test_writer_rejects_wrong_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        ApcWriter(io.BytesIO(), Header(**SMALL)).write(np.zeros(shape, dtype=np.int64))


def test_writer_does_not_mask_an_error_in_the_block() -> None:
    with pytest.raises(KeyError):
        with ApcWriter(io.BytesIO(), Header(**SMALL)):
            raise KeyError("boom")


def test_encode_decode_chunk() -> None:
    header = Header(**SMALL)
    codes = random_codes(header)[:, :, 8:10]
    data = encode_chunk(header, 2, codes)
    assert len(data) == 12
    np.testing.assert_array_equal(decode_chunk(header, 2, data), codes)
    with pytest.raises(ValueError):
        encode_chunk(header, 1, codes)  # chunk 1 holds 4 frames
    with pytest.raises(ChecksumError):
        decode_chunk(header, 1, encode_chunk(header, 1, random_codes(header)[:, :, 4:8])[::-1])


@FAST
@given(st.data())
def test_random_access_matches_read_all(data: st.DataObject) -> None:
    header = Header(**dict(SMALL, coded_length=data.draw(st.integers(0, 400))))
    reader = open_reader(to_file(header, random_codes(header)))
    start = data.draw(st.integers(0, header.n_frames))
    stop = data.draw(st.integers(start, header.n_frames))
    full = reader.read_all()
    np.testing.assert_array_equal(reader.read_frames(start, stop), full[:, :, start:stop])
    assert reader.verify() == []
    parts = list(reader)
    assert len(parts) == header.n_chunks
    if parts:
        np.testing.assert_array_equal(np.concatenate(parts, axis=2), full)


def test_read_frames_rejects_bad_ranges() -> None:
    reader = open_reader(to_file(Header(**SMALL), random_codes(Header(**SMALL))))
    for start, stop in [(-1, 2), (3, 2), (0, 11)]:
        with pytest.raises(ValueError):
            reader.read_frames(start, stop)


def test_zero_length_file_round_trips() -> None:
    header = make_header(coded_length=0, source_length=0)
    data = to_file(header, np.zeros((1, 4, 0), dtype=np.int64))
    assert len(data) == header.header_size and header.n_chunks == 0
    got_header, codes = read_apc(data)
    assert got_header == header and codes.shape == (1, 4, 0)
    assert open_reader(data).verify() == []


def test_multichannel_order_and_paths(tmp_path: object) -> None:
    header = make_header(channels=2, coded_length=48_000 + 5)
    codes = random_codes(header)
    path = tmp_path / "x.apc"  # type: ignore[operator]
    write_apc(path, header, codes)
    got_header, got = read_apc(str(path))
    assert got_header == header
    np.testing.assert_array_equal(got, codes)
    # Frame-major: the first 40 bits are frame 0, channel 0, codebooks 0..3.
    first = unpack_codes(path.read_bytes()[header.header_size :], 8, 10)
    np.testing.assert_array_equal(first, codes[:, :, 0].ravel())


def test_reader_at_an_offset_and_non_seekable_input() -> None:
    header = Header(**SMALL)
    codes = random_codes(header)
    buf = io.BytesIO(b"prefix" + to_file(header, codes))
    buf.seek(6)
    np.testing.assert_array_equal(ApcReader(buf).read_all(), codes)

    class Pipe(io.RawIOBase):
        def seekable(self) -> bool:
            return False

    with pytest.raises(ValueError):
        ApcReader(Pipe())  # type: ignore[arg-type]


# --- damage --------------------------------------------------------------------------


@pytest.fixture(name="good")
def fixture_good() -> bytes:
    """A 3-second mono file at the default settings: three 754-byte chunks."""
    header = make_header()
    return to_file(header, random_codes(header))


def test_error_family() -> None:
    for cls in (BadMagicError, UnsupportedVersionError, HeaderError, TruncatedError,
                ChecksumError, TrailingDataError, WeightsMismatchError):
        assert issubclass(cls, ApcError) and issubclass(cls, ValueError)


@pytest.mark.parametrize("data", [b"RIFF" + bytes(60), b"\x89PNG" + bytes(60), b"x"])
def test_bad_magic(data: bytes) -> None:
    with pytest.raises(BadMagicError):
        open_reader(data)


def test_bad_magic_after_text_mode_transfer(good: bytes) -> None:
    with pytest.raises(BadMagicError):
        open_reader(good.replace(b"\x89", b"?", 1))


def test_unknown_version(good: bytes) -> None:
    with pytest.raises(UnsupportedVersionError, match="version 4.*versions 1, 2, 3"):
        open_reader(fix_header_crc(good[:4] + b"\x04" + good[5:]))


@pytest.mark.parametrize("size", [0, 2, 4, 30, 49, 63])
def test_truncated_header(good: bytes, size: int) -> None:
    with pytest.raises(TruncatedError):
        open_reader(good[:size])


@pytest.mark.parametrize("cut, chunk, missing", [(1, 2, 1), (754, 2, 754), (755, 1, 755)])
def test_truncated_payload(good: bytes, cut: int, chunk: int, missing: int) -> None:
    with pytest.raises(TruncatedError, match=f"chunk {chunk} .*{missing} bytes missing"):
        open_reader(good[:-cut])


def test_flipped_header_byte(good: bytes) -> None:
    for pos in range(5, 64):
        with pytest.raises((ChecksumError, TruncatedError) if pos == 48 else ChecksumError) as info:
            open_reader(flip(good, pos))
        if isinstance(info.value, ChecksumError):
            assert info.value.chunk is None and "header" in str(info.value)


@pytest.mark.parametrize("k", [0, 1, 2])
def test_flipped_chunk_byte(good: bytes, k: int) -> None:
    reader = open_reader(flip(good, 64 + 754 * k + 100))
    problems = reader.verify()
    assert [type(p) for p in problems] == [ChecksumError]
    assert problems[0].chunk == k  # type: ignore[attr-defined]
    assert str(problems[0]) == f"chunk {k} ({k}.00–{k + 1}.00 s) is damaged: checksum mismatch"
    with pytest.raises(ChecksumError) as info:
        reader.read_all()
    assert info.value.chunk == k
    other = (k + 1) % 3
    assert reader.read_frames(other * 150, other * 150 + 150).shape == (1, 4, 150)


def test_trailing_data(good: bytes) -> None:
    with pytest.raises(TrailingDataError, match="1 unexpected"):
        open_reader(good + b"\x00")


def test_swapped_chunks(good: bytes) -> None:
    c0, c1 = good[64:818], good[818:1572]
    reader = open_reader(good[:64] + c1 + c0 + good[1572:])
    assert [p.chunk for p in reader.verify()] == [0, 1]  # type: ignore[attr-defined]
    with pytest.raises(ChecksumError):
        reader.read_all()


def test_reserved_flags_and_bad_length_field(good: bytes) -> None:
    with pytest.raises(HeaderError, match="reserved"):
        open_reader(fix_header_crc(good[:5] + b"\x04" + good[6:]))
    with pytest.raises(HeaderError, match="live stream"):  # live, yet lengths are given
        open_reader(fix_header_crc(good[:5] + b"\x02" + good[6:]))
    with pytest.raises(HeaderError, match="length"):
        open_reader(fix_header_crc(good[:6] + struct.pack("<H", 65) + good[8:]))
    with pytest.raises(HeaderError):
        open_reader(fix_header_crc(good[:49] + b"\xffpcodec-48k" + good[60:]))
    with pytest.raises(HeaderError):
        open_reader(fix_header_crc(good[:14] + b"\x00" + good[15:]))  # zero codebooks


def test_huge_length_field_is_truncation_not_memory_error(good: bytes) -> None:
    with pytest.raises(TruncatedError):
        open_reader(fix_header_crc(good[:32] + struct.pack("<Q", 2**48) + good[40:]))
    with pytest.raises(HeaderError):
        open_reader(fix_header_crc(good[:32] + struct.pack("<Q", 2**64 - 1) + good[40:]))


def test_nonzero_padding_bits() -> None:
    header = Header(**SMALL)
    data = bytearray(to_file(header, random_codes(header)))
    last = header.chunk_offset(2)
    data[last + 7] |= 0x01  # payload byte 7 of the last chunk ends with 4 padding bits
    data[last + 8 : last + 12] = struct.pack("<I", zlib.crc32(bytes(data[last : last + 8]),
                                                              zlib.crc32(struct.pack("<I", 2))))
    problems = open_reader(bytes(data)).verify()
    assert len(problems) == 1 and isinstance(problems[0], ChecksumError)
    assert problems[0].chunk == 2 and str(problems[0]).startswith("chunk 2 (")
    assert str(problems[0]).endswith("is damaged: padding bits are not zero")


# --- fuzzing -------------------------------------------------------------------------


@FAST
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    read_every_way(open_reader, data)
    read_every_way(open_reader, b"\x89APC\x01" + data)


SMALL_FILE = to_file(Header(**SMALL), random_codes(Header(**SMALL)))


@FAST
@given(edits(len(SMALL_FILE)))
def test_fuzz_mutated_files(changes: list[tuple[str, int, int]]) -> None:
    data = damage(SMALL_FILE, changes)
    read_every_way(open_reader, data)
    read_every_way(open_reader, fix_header_crc(data)
                   if len(data) >= 53 and len(data) >= 53 + data[48] else b"")
