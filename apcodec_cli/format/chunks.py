"""The pieces of a `.apc` payload: bit-packed and range-coded chunks, the level gains that
start a version 3 chunk, their CRCs, the chunk index (layout: docs/format.md).
`bitstream.py` puts them together into files."""

from __future__ import annotations

import struct
import zlib
from typing import TYPE_CHECKING

import numpy as np

from .header import (ApcError, ChecksumError, CodeTablesMismatchError, Header,
                     TruncatedError)

if TYPE_CHECKING:
    from .entropy import CodeTables

_U32 = struct.Struct("<I")
#: A version 2 or 3 file ends with its chunk index: a u32 per chunk, a u32 CRC-32, this mark.
INDEX_MARK = b"\x89IDX"
#: Bit 31 of a chunk index entry: the chunk is bit-packed (as in version 1), not range-coded.
INDEX_PACKED = 1 << 31


def _check_bits(bits: int) -> None:
    if not 1 <= bits <= 16:
        raise ValueError(f"bits per code must be 1..16, got {bits}")


def pack_codes(values: np.ndarray, bits: int) -> bytes:
    """Pack integers as `bits`-bit fields, MSB first, zero-padded to a whole byte.

    Args:
        values: Integers in [0, 2**bits), flattened in C order.
        bits: Field width, 1..16.

    Returns:
        ceil(values.size * bits / 8) bytes.

    Raises:
        ValueError: Non-integer values, values out of range, or bad `bits`.
    """
    _check_bits(bits)
    flat = np.asarray(values).ravel()
    if flat.size and not np.issubdtype(flat.dtype, np.integer):
        raise ValueError(f"codes must be integers, got dtype {flat.dtype}")
    if flat.size and (flat.min() < 0 or flat.max() >= 1 << bits):
        raise ValueError(f"codes must lie in [0, {1 << bits}) for {bits}-bit packing")
    as_bytes = flat.astype(">u2").view(np.uint8).reshape(-1, 2)
    bit_rows = np.unpackbits(as_bytes, axis=1)[:, 16 - bits :]
    return np.packbits(bit_rows.ravel()).tobytes()


def unpack_codes(data: bytes, count: int, bits: int) -> np.ndarray:
    """Inverse of `pack_codes`: read `count` fields of `bits` bits, MSB first.

    Returns:
        1-D int64 array of length `count`. Bytes after the fields are ignored.

    Raises:
        ValueError: `data` is too short, or bad `count` or `bits`.
    """
    _check_bits(bits)
    need = (count * bits + 7) // 8
    if count < 0 or len(data) < need:
        raise ValueError(f"{count} codes of {bits} bits need {need} bytes, got {len(data)}")
    raw = np.frombuffer(data, dtype=np.uint8, count=need)
    padded = np.zeros((count, 16), dtype=np.uint8)
    padded[:, 16 - bits :] = np.unpackbits(raw, count=count * bits).reshape(count, bits)
    return np.packbits(padded, axis=1).view(">u2").ravel().astype(np.int64)


def chunk_label(header: Header, index: int) -> str:
    start, stop = header.chunk_frame_range(index)
    rate = header.frame_rate
    return f"chunk {index} ({start / rate:.2f}–{stop / rate:.2f} s)"


def indexed_crc(index: int, payload: bytes) -> int:
    """CRC-32 of `payload` seeded with u32le(index): chunks and live records use it, so a
    piece moved to another position fails its check."""
    return zlib.crc32(payload, zlib.crc32(_U32.pack(index)))


def check_codes(header: Header, codes: np.ndarray, frames: int | None = None) -> np.ndarray:
    """Validate codes of shape (channels, n_codebooks, frames); return them as int64."""
    arr = np.asarray(codes)
    want = (header.channels, header.n_codebooks, "frames" if frames is None else frames)
    if arr.ndim != 3 or arr.shape[:2] != want[:2] or frames not in (None, arr.shape[2]):
        raise ValueError(
            f"codes must have shape (channels, codebooks, frames) = {want}, got {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"codes must be integers, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= 1 << header.bits_per_code):
        raise ValueError(f"codes must lie in [0, {1 << header.bits_per_code})")
    return arr.astype(np.int64, copy=False)


def as_gains(levels: np.ndarray) -> np.ndarray:
    """Level gains as int8 steps.

    Raises:
        ValueError: Not integers, or outside -128..127.
    """
    arr = np.asarray(levels)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"level gains must be integers, got dtype {arr.dtype}")
    if arr.size and (arr.min() < -128 or arr.max() > 127):
        raise ValueError("level gains must lie in -128..127")
    return arr.astype(np.int8)


def check_levels(header: Header, index: int, levels: np.ndarray | None) -> bytes:
    """The level gains of chunk `index` (channels, its segments) as the bytes that start it:
    segment by segment, within a segment channel by channel, int8 each; b"" without levels.

    Raises:
        ValueError: Levels for a file without them, or the reverse, or a wrong shape.
    """
    if not header.has_levels:
        if levels is not None:
            raise ValueError(f"a version {header.version} chunk holds no level gains")
        return b""
    start, stop = header.chunk_level_range(index)
    shape = None if levels is None else np.shape(levels)
    if shape != (header.channels, stop - start):
        raise ValueError(f"chunk {index} needs level gains of shape "
                         f"{(header.channels, stop - start)}, got {shape}")
    return as_gains(levels).T.tobytes()


def split_levels(header: Header, index: int, payload: bytes) -> tuple[np.ndarray, bytes]:
    """A chunk's payload (CRC removed) as its level gains (channels, segments) int8 and the
    bytes of its codes."""
    n = header.level_bytes(index)
    start, stop = header.chunk_level_range(index)
    gains = np.frombuffer(payload[:n], dtype=np.int8).reshape(stop - start, header.channels)
    return np.ascontiguousarray(gains.T), payload[n:]


def encode_chunk(header: Header, index: int, codes: np.ndarray,
                 levels: np.ndarray | None = None) -> bytes:
    """Encode chunk `index`: codes of shape (channels, n_codebooks, frames in chunk), and
    in version 3 its level gains (`check_levels`) before them.

    Returns:
        The payload, bit-packed, followed by its index-seeded CRC.

    Raises:
        IndexError: No such chunk. ValueError: wrong shape, dtype or values.
    """
    start, stop = header.chunk_frame_range(index)
    arr = check_codes(header, codes, stop - start)
    payload = check_levels(header, index, levels) + pack_frames(header, arr)
    return payload + _U32.pack(indexed_crc(index, payload))


def pack_frames(header: Header, codes: np.ndarray) -> bytes:
    """Codes (channels, n_codebooks, frames) packed frame-major, as a chunk holds them."""
    return pack_codes(codes.transpose(2, 0, 1), header.bits_per_code)


def unpack_frames(header: Header, payload: bytes, frames: int, label: str,
                  index: int) -> np.ndarray:
    """Inverse of `pack_frames` for `frames` frames; `label` and `index` name the piece.

    Raises:
        ChecksumError: The padding bits are not zero.
    """
    count = frames * header.channels * header.n_codebooks
    pad = len(payload) * 8 - count * header.bits_per_code
    if pad and payload[-1] & ((1 << pad) - 1):
        raise ChecksumError(f"{label} is damaged: padding bits are not zero", index)
    flat = unpack_codes(payload, count, header.bits_per_code)
    shaped = flat.reshape(frames, header.channels, header.n_codebooks)
    return np.ascontiguousarray(shaped.transpose(1, 2, 0))


def decode_chunk(header: Header, index: int, data: bytes) -> np.ndarray:
    """Decode chunk `index` into int64 codes of shape (channels, n_codebooks, frames).

    Raises:
        TruncatedError: `data` is shorter than the chunk.
        ChecksumError: CRC mismatch or non-zero padding bits.
        ApcError: `data` is longer than the chunk.
    """
    start, stop = header.chunk_frame_range(index)
    size, label = header.chunk_size(index), chunk_label(header, index)
    if len(data) < size:
        raise TruncatedError(f"{label} is incomplete: {size - len(data)} bytes missing")
    if len(data) > size:
        raise ApcError(f"{label} should be {size} bytes, got {len(data)}")
    payload = bytes(data[:-_U32.size])
    if indexed_crc(index, payload) != _U32.unpack_from(data, size - _U32.size)[0]:
        raise ChecksumError(f"{label} is damaged: checksum mismatch", index)
    return unpack_frames(header, split_levels(header, index, payload)[1], stop - start, label,
                         index)


def encode_coded_chunk(header: Header, index: int, codes: np.ndarray, tables: CodeTables,
                       levels: np.ndarray | None = None) -> tuple[bytes, bool]:
    """Chunk `index` of a version 2 or 3 file: range-coded, or bit-packed where that is not
    larger (version 3: its level gains first, either way).

    Returns:
        The chunk (its CRC included) and whether it is bit-packed.
    """
    start, stop = header.chunk_frame_range(index)
    payload = check_levels(header, index, levels) + \
        tables.encode(check_codes(header, codes, stop - start))
    if len(payload) + _U32.size >= header.chunk_size(index):
        return encode_chunk(header, index, codes, levels), True
    return payload + _U32.pack(indexed_crc(index, payload)), False


def decode_coded_chunk(header: Header, index: int, payload: bytes, tables: CodeTables | None
                       ) -> np.ndarray:
    """Decode the range-coded payload (CRC already checked, level gains removed) of chunk
    `index`.

    Raises:
        CodeTablesMismatchError: No tables. ChecksumError: the payload decodes to no
            valid codes (it can only be damaged, as its CRC matched).
    """
    label = chunk_label(header, index)
    if tables is None:
        raise CodeTablesMismatchError(
            f"{label} is range-coded: decoding it needs the code tables of the weights that "
            f"made the file (fingerprint {header.fingerprint.hex()})")
    start, stop = header.chunk_frame_range(index)
    try:
        return tables.decode(payload, header.channels, stop - start)
    except ValueError as exc:
        raise ChecksumError(f"{label} is damaged: {exc}", index) from None


def chunk_index(entries: list[int]) -> bytes:
    """The end of a version 2 or 3 file: its chunk index entries, their CRC, the index mark."""
    body = np.asarray(entries, dtype="<u4").tobytes()
    return body + _U32.pack(indexed_crc(len(entries), body)) + INDEX_MARK


def index_entry(size: int, packed: bool) -> int:
    return size | (INDEX_PACKED if packed else 0)


def check_tables(header: Header, tables: CodeTables | None) -> None:
    """Raise CodeTablesMismatchError unless `tables` are the ones a version 2 or 3 header
    names: its weights fingerprint must be that of its network fingerprint with these
    tables (or, for a file written without tables, there must be none)."""
    if not header.needs_tables:
        if tables is not None:
            raise CodeTablesMismatchError(
                "the file was written without code tables (every chunk bit-packed): read "
                "it without them")
        return
    if tables is None:
        raise CodeTablesMismatchError(
            f"a version {header.version} (range-coded) file needs the code tables of its weights "
            f"(fingerprint {header.fingerprint.hex()}); none are loaded")
    if tables.weights_fingerprint(header.network_fingerprint) != header.fingerprint:
        raise CodeTablesMismatchError(
            f"the file was range-coded with other code tables (weights fingerprint "
            f"{header.fingerprint.hex()}) than those loaded (tables {tables.fingerprint.hex()}); "
            "decode it with the weights file that wrote it (--weights)")
    tables.check_geometry(header.n_codebooks, header.bits_per_code)
