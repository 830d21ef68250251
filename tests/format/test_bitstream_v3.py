"""Format version 3: level gains in every chunk, the golden file, the independent reader,
the gain curve and the encoder's solve."""

from __future__ import annotations

import dataclasses
import io
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import apcref
from apcodec_cli.format import levels
from apcodec_cli.format.bitstream import (
    INDEX_PACKED, ApcError, ApcReader, ApcWriter, ChecksumError, CodeTablesMismatchError, Header,
    HeaderError, read_apc, read_header, write_apc)

from apcdata import as_dict, fast, random_codes
from golden import (GOLDEN_V3_PATH, golden_tables, golden_v2_codes, golden_v3_header,
                    golden_v3_levels)
from helpers import flip
from test_bitstream_v2 import NETWORK, SMALL, TABLES, typical

FAST = fast(max_examples=40)


def small(**changes: object) -> Header:
    """SMALL (10 frames, chunks of 4) in version 3 with segments of 2 frames."""
    return Header(**{**SMALL, "version": 3, "level_frames": 2, **changes})


def to_file(header: Header, codes: np.ndarray, gains: np.ndarray, tables=TABLES) -> bytes:
    buf = io.BytesIO()
    write_apc(buf, header, codes, tables, gains)
    return buf.getvalue()


def gains_of(seed: int, header: Header) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, (header.channels, header.n_level_segments)).astype(np.int8)


def test_golden_v3_file_keeps_decoding_to_the_same_codes_and_gains() -> None:
    data = GOLDEN_V3_PATH.read_bytes()
    reader = ApcReader(io.BytesIO(data), golden_tables())
    assert reader.header == golden_v3_header()
    np.testing.assert_array_equal(reader.read_all(), golden_v2_codes())
    np.testing.assert_array_equal(reader.levels(), golden_v3_levels())
    assert [reader.chunk_bytes(i) for i in range(3)][1] == reader.header.chunk_size(1)
    assert to_file(reader.header, golden_v2_codes(), golden_v3_levels(),
                   golden_tables()) == data  # the writer is stable too


def test_golden_v3_file_read_by_the_specification_alone() -> None:
    fields, codes, gains = apcref.read_v3(GOLDEN_V3_PATH.read_bytes(),
                                          as_dict(golden_tables()))
    assert (fields["level_frames"], fields["segments"], fields["frames"]) == (30, 13, 375)
    assert codes == golden_v2_codes().tolist()
    assert gains == golden_v3_levels().tolist()


@FAST
@given(seed=st.integers(0, 2**32 - 1), frames=st.integers(0, 40),
       chunk=st.sampled_from([1, 2, 4, 6]), streamable=st.booleans(), packed=st.booleans())
def test_v3_files_read_back_and_agree_with_the_specification(
        seed: int, frames: int, chunk: int, streamable: bool, packed: bool) -> None:
    level_frames = chunk if chunk < 4 else chunk // 2
    header = small(coded_length=frames * 10, chunk_frames=chunk, level_frames=level_frames,
                   streamable=streamable, source_length=frames * 9)
    codes = typical(seed, (2, 3, header.n_frames))
    if packed:  # no tables: every chunk bit-packed, both fingerprints the network's
        header, tables = dataclasses.replace(header, fingerprint=NETWORK), None
    else:
        tables = TABLES
    gains = gains_of(seed, header)
    data = to_file(header, codes, gains, tables)
    reader = ApcReader(io.BytesIO(data), tables)
    np.testing.assert_array_equal(reader.read_all(), codes)
    np.testing.assert_array_equal(reader.levels(), gains)
    assert reader.verify() == []
    fields, ref_codes, ref_gains = apcref.read_v3(data, None if packed else as_dict(TABLES))
    assert np.asarray(ref_codes).reshape(codes.shape).tolist() == codes.tolist()
    assert ref_gains == gains.tolist()


def test_a_v3_file_is_the_v2_file_plus_one_byte_per_segment_and_channel() -> None:
    header = small()
    codes = typical(3, (2, 3, header.n_frames))
    v2 = io.BytesIO()
    write_apc(v2, dataclasses.replace(header, version=2, level_frames=0), codes, TABLES)
    v3 = to_file(header, codes, gains_of(3, header))
    assert len(v3) - len(v2.getvalue()) == 2 + header.n_level_segments * header.channels


def test_header_v3_layout_and_level_frames() -> None:
    header = small()
    raw = header.to_bytes()
    assert len(raw) == header.header_size == 63 + len("tiny")
    assert struct.unpack_from("<H", raw, 56)[0] == 2 and raw[58] == len("tiny")
    assert read_header(io.BytesIO(raw)) == header
    assert header.n_level_segments == 5 and header.level_samples == 20
    assert [header.chunk_level_range(i) for i in range(3)] == [(0, 2), (2, 4), (4, 5)]
    with pytest.raises(HeaderError, match="must divide"):
        small(level_frames=3)
    with pytest.raises(HeaderError, match="must divide"):
        small(level_frames=0)
    with pytest.raises(HeaderError, match="no level segments"):
        Header(**dict(SMALL, level_frames=2))
    with pytest.raises(HeaderError, match="live stream"):
        small(live=True, source_length=0, coded_length=0)


def test_writer_needs_every_gain_and_no_more() -> None:
    header = small()
    codes = typical(1, (2, 3, header.n_frames))
    with pytest.raises(ApcError, match="chunk 0 .* has no level gains"):
        to_file(header, codes, None)
    with pytest.raises(ApcError, match="chunk 2 .* has no level gains"):
        to_file(header, codes, np.zeros((2, 4), np.int8))
    with pytest.raises(ApcError, match="too many level gains"):
        to_file(header, codes, np.zeros((2, 6), np.int8))
    with pytest.raises(ValueError, match=r"shape \(channels, segments\)"):
        to_file(header, codes, np.zeros((1, 5), np.int8))
    with pytest.raises(ValueError, match="holds no level gains"):
        buf = io.BytesIO()
        write_apc(buf, dataclasses.replace(header, version=2, level_frames=0), codes, TABLES,
                  np.zeros((2, 5), np.int8))


def test_writer_writes_each_chunk_once_its_gains_are_there() -> None:
    header = small()
    codes, gains = typical(6, (2, 3, header.n_frames)), gains_of(6, header)
    buf = io.BytesIO()
    writer = ApcWriter(buf, header, TABLES)
    writer.write(codes[:, :, :9])  # chunks 0 and 1 whole, no gains yet
    assert len(buf.getvalue()) == header.header_size
    writer.write(codes[:, :, :0], gains[:, :3])  # chunk 0's two and one of chunk 1's
    after_first = len(buf.getvalue())
    assert after_first > header.header_size
    writer.write(codes[:, :, 9:], gains[:, 3:])  # the rest: chunks 1 and 2 leave at once
    assert len(buf.getvalue()) > after_first
    writer.close()
    assert buf.getvalue() == to_file(header, codes, gains)


def test_a_flipped_gain_byte_names_its_chunk() -> None:
    header = small()
    data = to_file(header, typical(2, (2, 3, header.n_frames)), gains_of(2, header))
    reader = ApcReader(io.BytesIO(data), TABLES)
    offset = header.header_size + reader.chunk_bytes(0)  # chunk 1's first gain byte
    bad = ApcReader(io.BytesIO(flip(data, offset)), TABLES)
    with pytest.raises(ChecksumError, match="chunk 1") as caught:
        bad.read_levels(1)
    assert caught.value.chunk == 1
    assert [e.chunk for e in bad.verify()] == [1]
    np.testing.assert_array_equal(bad.levels(skip={1})[:, 2:4], 0)


def test_index_entries_count_the_gains() -> None:
    header = small()
    data = bytearray(to_file(header, typical(4, (2, 3, header.n_frames)), gains_of(4, header)))
    tail = 3 * 4 + 8
    entries = list(struct.unpack_from("<3I", data, len(data) - tail))
    coded = [i for i, e in enumerate(entries) if not e & INDEX_PACKED]
    assert coded, "the typical codes range-code"
    i = coded[0]
    assert (entries[i] - header.level_bytes(i)) % 4 == 0
    # A range-coded chunk is its gains and whole words: a size 2 bytes short is invalid.
    from apcodec_cli.format.chunks import chunk_index

    entries[i] -= 2
    data[len(data) - tail:] = chunk_index(entries)
    with pytest.raises(ApcError, match="index is invalid"):
        ApcReader(io.BytesIO(bytes(data)), TABLES)


def test_a_file_without_tables_reads_without_them_and_refuses_other_tables() -> None:
    header = small(fingerprint=NETWORK)
    assert not header.needs_tables
    codes = random_codes(5, (2, 3, header.n_frames), 5)
    data = to_file(header, codes, gains_of(5, header), None)
    header_read, read = read_apc(data)
    np.testing.assert_array_equal(read, codes)
    with pytest.raises(CodeTablesMismatchError, match="without code tables"):
        ApcReader(io.BytesIO(data), TABLES)


# ---- the gain curve and the encoder's solve -----------------------------------------------


@FAST
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 6), segment=st.integers(1, 50),
       first=st.integers(0, 400))
def test_gain_curve_is_the_specification(seed: int, m: int, segment: int, first: int) -> None:
    gains = np.random.default_rng(seed).integers(-128, 128, (2, m)).astype(np.int8)
    curve = levels.gain_curve(gains, segment, first, 37)
    for c in range(2):
        want = [apcref.gain(gains[c].tolist(), segment, t) for t in range(first, first + 37)]
        np.testing.assert_allclose(curve[c], want, rtol=1e-12)


def test_gain_curve_holds_at_the_ends_and_meets_each_gain_at_its_centre() -> None:
    gains = np.array([[0, 24, -24]], np.int8)  # 0, +6, -6 dB
    curve = levels.gain_curve(gains, 11, 0, 33)[0]  # centres at samples 5, 16 and 27
    assert np.allclose(curve[:6], 1.0) and np.allclose(curve[27:], 10 ** (-6 / 20))
    assert np.isclose(curve[16], 10 ** (6 / 20))
    assert np.all(np.diff(curve[5:17]) > 0) and np.all(np.diff(curve[16:28]) < 0)


def segment_db(x: np.ndarray, y: np.ndarray, segment: int) -> np.ndarray:
    idx = np.arange(x.shape[-1]) // segment
    return 10 * np.log10(np.bincount(idx, y ** 2) / np.bincount(idx, x ** 2))


def test_the_solve_brings_each_segment_to_the_source_level() -> None:
    """A decoder whose level drifts slowly by up to +-8 dB: after the gains every segment
    is within the quantisation (0.25 dB steps) of the source, also over blocks of any size."""
    rng = np.random.default_rng(0)
    segment, n = 480, 20
    t = np.arange(segment * n - 123)
    source = rng.standard_normal(t.size) * (0.05 + 0.04 * np.sin(t / 2000))
    decoded = source * 10 ** (8 * np.sin(t / 1500) / 20)
    meter = levels.LevelMeter(1, segment, n)
    passed = np.concatenate(list(meter.source([source[None, :1000], source[None, 1000:]])), 1)
    np.testing.assert_array_equal(passed[0], source)
    for a in range(0, t.size, 777):
        meter.decoded(decoded[None, a:a + 777])
    gains = meter.solve()
    out = np.concatenate(list(levels.apply([decoded[None].astype(np.float32)], 0, gains,
                                           segment)), 1)[0]
    before = segment_db(source, decoded, segment)
    after = segment_db(source, out.astype(np.float64), segment)
    assert np.abs(before).max() > 6
    assert np.abs(after).max() < 0.3
    # the energies the meter predicts are those the decoder's output has
    idx = np.arange(t.size) // segment
    predicted = meter.energies(levels.amplitudes(gains))[0]
    np.testing.assert_allclose(predicted, np.bincount(idx, out.astype(np.float64) ** 2),
                               rtol=1e-5)


def test_the_solve_turns_noise_over_silence_down_and_keeps_quiet_alike_alone() -> None:
    segment = 100
    source = np.zeros((2, 600))
    source[1] = 1e-5  # -100 dBFS: as silent as the floor
    decoded = np.zeros((2, 600))
    decoded[0, :] = 0.01 * np.sign(np.sin(np.arange(600)))  # -40 dBFS of noise over silence
    decoded[1] = 2e-5
    meter = levels.LevelMeter(2, segment, 6)
    list(meter.source([source]))
    meter.decoded(decoded)
    gains = meter.solve()
    assert np.all(gains[0] == levels.LOWEST)  # -30 dB, as far as the encoder goes
    assert np.all(gains[1] == 0)


def test_empty_signal_has_no_segments() -> None:
    meter = levels.LevelMeter(1, 10, 0)
    list(meter.source([np.zeros((1, 0))]))
    meter.decoded(np.zeros((1, 0)))
    assert meter.solve().shape == (1, 0)
