"""The `.apc` file format: a header, then CRC-protected chunks of codes; writer and reader.

Specified byte by byte in docs/format.md; the header is `header.py`. A file holds its code
frames in chunks of `chunk_frames` frames, each chunk with a CRC-32 seeded with its index,
so that a reader can name the damaged chunk and its time and read any chunk on its own:

- version 1: every chunk holds its codes bit-packed, `bits_per_code` bits each, so every
  chunk's size and place follow from the header;
- version 2: each chunk is range-coded on its own with the code tables stored in the
  weights (`entropy.py`), or bit-packed as in version 1 where that is not larger; chunks
  therefore differ in size, and a chunk index at the end of the file gives each one's size.

Readers reject a wrong magic, an unknown version, any CRC mismatch, non-zero padding bits,
missing bytes and bytes after the end. This module needs numpy and struct, no torch.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Iterator, Union

import numpy as np

from .header import (  # noqa: F401 - re-exported: the format's API in one place
    MAGIC, VERSION, VERSION_CODED, VERSIONS, ApcError, BadMagicError, ChecksumError,
    CodeTablesMismatchError, Header, HeaderError, LiveStreamError, TrailingDataError,
    TruncatedError, UnsupportedVersionError, WeightsMismatchError, peek_header, read_header)

if TYPE_CHECKING:
    from .entropy import CodeTables

_U32 = struct.Struct("<I")
#: A version 2 file ends with its chunk index: a u32 per chunk, a u32 CRC-32, this mark.
INDEX_MARK = b"\x89IDX"
#: Bit 31 of a chunk index entry: the chunk is bit-packed (as in version 1), not range-coded.
INDEX_PACKED = 1 << 31

PathOrFile = Union[str, "os.PathLike[str]", BinaryIO]


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


def _chunk_label(header: Header, index: int) -> str:
    start, stop = header.chunk_frame_range(index)
    rate = header.frame_rate
    return f"chunk {index} ({start / rate:.2f}–{stop / rate:.2f} s)"


def indexed_crc(index: int, payload: bytes) -> int:
    """CRC-32 of `payload` seeded with u32le(index): chunks and live records use it, so a
    piece moved to another position fails its check."""
    return zlib.crc32(payload, zlib.crc32(_U32.pack(index)))


def _check_codes(header: Header, codes: np.ndarray, frames: int | None = None) -> np.ndarray:
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


def encode_chunk(header: Header, index: int, codes: np.ndarray) -> bytes:
    """Encode chunk `index`: codes of shape (channels, n_codebooks, frames in chunk).

    Returns:
        The packed payload followed by its index-seeded CRC.

    Raises:
        IndexError: No such chunk. ValueError: wrong shape, dtype or values.
    """
    start, stop = header.chunk_frame_range(index)
    arr = _check_codes(header, codes, stop - start)
    payload = pack_frames(header, arr)
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
    size, label = header.chunk_size(index), _chunk_label(header, index)
    if len(data) < size:
        raise TruncatedError(f"{label} is incomplete: {size - len(data)} bytes missing")
    if len(data) > size:
        raise ApcError(f"{label} should be {size} bytes, got {len(data)}")
    payload = bytes(data[:-_U32.size])
    if indexed_crc(index, payload) != _U32.unpack_from(data, size - _U32.size)[0]:
        raise ChecksumError(f"{label} is damaged: checksum mismatch", index)
    return unpack_frames(header, payload, stop - start, label, index)


def encode_coded_chunk(header: Header, index: int, codes: np.ndarray, tables: CodeTables
                       ) -> tuple[bytes, bool]:
    """Chunk `index` of a version 2 file: range-coded, or bit-packed where that is not larger.

    Returns:
        The chunk (its CRC included) and whether it is bit-packed.
    """
    start, stop = header.chunk_frame_range(index)
    payload = tables.encode(_check_codes(header, codes, stop - start))
    if len(payload) + _U32.size >= header.chunk_size(index):
        return encode_chunk(header, index, codes), True
    return payload + _U32.pack(indexed_crc(index, payload)), False


def decode_coded_chunk(header: Header, index: int, payload: bytes, tables: CodeTables | None
                       ) -> np.ndarray:
    """Decode the range-coded payload (CRC already checked) of chunk `index`.

    Raises:
        CodeTablesMismatchError: No tables. ChecksumError: the payload decodes to no
            valid codes (it can only be damaged, as its CRC matched).
    """
    label = _chunk_label(header, index)
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
    """The end of a version 2 file: its chunk index entries, their CRC, the index mark."""
    body = np.asarray(entries, dtype="<u4").tobytes()
    return body + _U32.pack(indexed_crc(len(entries), body)) + INDEX_MARK


def _index_entry(size: int, packed: bool) -> int:
    return size | (INDEX_PACKED if packed else 0)


class ApcWriter:
    """Write a `.apc` file: the header at once, then chunks as whole chunks fill.

    Args:
        fileobj: Binary file open for writing; not closed by the writer.
        header: The header; `header.n_frames` frames must be written before `close`.
        tables: The code tables of a version 2 header (those its fingerprint names).

    Raises:
        CodeTablesMismatchError: A version 2 header without its tables, or the reverse.
    """

    def __init__(self, fileobj: BinaryIO, header: Header, tables: CodeTables | None = None
                 ) -> None:
        if header.coded:
            check_tables(header, tables)
        elif tables is not None:
            raise CodeTablesMismatchError("a version 1 file holds no range-coded chunks: "
                                          "write it without code tables")
        self.header = header
        self._tables = tables
        self._file = fileobj
        self._pending: list[np.ndarray] = []
        self._pending_frames = 0
        self._next_chunk = 0
        self._frames = 0
        self._closed = False
        self._index: list[int] = []
        fileobj.write(header.to_bytes())

    def write(self, codes: np.ndarray) -> None:
        """Append codes of shape (channels, n_codebooks, frames), any number of frames.

        Raises:
            ValueError: Wrong shape, dtype or values, or the writer is closed.
            ApcError: More frames than the header announces.
        """
        if self._closed:
            raise ValueError("write to a closed ApcWriter")
        arr = _check_codes(self.header, codes)
        if self._frames + arr.shape[2] > self.header.n_frames:
            raise ApcError(f"too many code frames: the header announces {self.header.n_frames}")
        if arr.shape[2]:
            self._pending.append(arr)
            self._pending_frames += arr.shape[2]
            self._frames += arr.shape[2]
        if self._pending_frames >= self.header.chunk_frames:
            self._emit(final=False)

    def _chunk(self, codes: np.ndarray) -> bytes:
        index = self._next_chunk
        self._next_chunk += 1
        if self._tables is None:
            return encode_chunk(self.header, index, codes)
        data, packed = encode_coded_chunk(self.header, index, codes, self._tables)
        self._index.append(_index_entry(len(data), packed))
        return data

    def _emit(self, final: bool) -> None:
        """Write every full pending chunk, and the partial rest too when `final`."""
        step = self.header.chunk_frames
        block = np.concatenate(self._pending, axis=2) if self._pending else None
        pos, total = 0, self._pending_frames
        while block is not None and (total - pos >= step or (final and pos < total)):
            piece = block[:, :, pos : pos + step]
            self._file.write(self._chunk(piece))
            pos += piece.shape[2]
        self._pending = [block[:, :, pos:].copy()] if block is not None and pos < total else []
        self._pending_frames = total - pos

    def close(self) -> None:
        """Write the last partial chunk (and a version 2 file's chunk index); the file
        object itself stays open.

        Raises:
            ApcError: Fewer frames were written than the header announces.
        """
        if self._closed:
            return
        self._closed = True
        if self._frames != self.header.n_frames:
            raise ApcError(f"{self._frames} code frames were written, "
                           f"the header announces {self.header.n_frames}")
        self._emit(final=True)
        if self.header.coded:
            self._file.write(chunk_index(self._index))
        if hasattr(self._file, "flush"):
            self._file.flush()

    def __enter__(self) -> ApcWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self._closed = True


def check_tables(header: Header, tables: CodeTables | None) -> None:
    """Raise CodeTablesMismatchError unless `tables` are the ones a version 2 header names:
    its weights fingerprint must be that of its network fingerprint with these tables."""
    if tables is None:
        raise CodeTablesMismatchError(
            "a version 2 (range-coded) file needs the code tables of its weights "
            f"(fingerprint {header.fingerprint.hex()}); none are loaded")
    if tables.weights_fingerprint(header.network_fingerprint) != header.fingerprint:
        raise CodeTablesMismatchError(
            f"the file was range-coded with other code tables (weights fingerprint "
            f"{header.fingerprint.hex()}) than those loaded (tables {tables.fingerprint.hex()})")
    tables.check_geometry(header.n_codebooks, header.bits_per_code)


class ApcReader:
    """Random access to the chunks of a `.apc` file.

    Args:
        fileobj: Seekable binary file positioned at the header (wrap bytes from a pipe
            in io.BytesIO); it is not closed by the reader.
        tables: Code tables for a version 2 file (from the weights that made it). Without
            them its header, chunk index and CRCs can still be read and checked.

    Raises:
        ValueError: `fileobj` is not seekable.
        ApcError: Bad header (see `Header.from_bytes`); TruncatedError or
            TrailingDataError when the file size disagrees with the header or the chunk
            index; CodeTablesMismatchError for `tables` other than the file's.
    """

    def __init__(self, fileobj: BinaryIO, tables: CodeTables | None = None) -> None:
        seekable = getattr(fileobj, "seekable", None)
        if seekable is None or not seekable():
            raise ValueError("ApcReader needs a seekable file; wrap the bytes in io.BytesIO")
        self._file = fileobj
        self._base = fileobj.tell()
        self.header = read_header(fileobj)
        if self.header.live:
            raise LiveStreamError("a live stream has no random access: read it with "
                                  "live.LiveReader")
        if self.header.coded and tables is not None:
            check_tables(self.header, tables)
        self._tables = tables
        fileobj.seek(0, io.SEEK_END)
        size = fileobj.tell() - self._base
        self._chunks = self._read_index(size) if self.header.coded else self._check_size(size)

    def _check_size(self, actual: int) -> list[tuple[int, int, bool]]:
        """A version 1 file's chunks, as (offset, size, packed), once its size is checked."""
        h = self.header
        if actual < h.file_size:
            index = min((actual - h.header_size) // h.chunk_size(0), h.n_chunks - 1)
            raise TruncatedError(f"file is truncated: {_chunk_label(h, index)} is incomplete, "
                                 f"{h.file_size - actual} bytes missing")
        if actual > h.file_size:
            raise TrailingDataError(f"{actual - h.file_size} unexpected bytes after the last chunk")
        return [(h.chunk_offset(i), h.chunk_size(i), True) for i in range(h.n_chunks)]

    def _read_index(self, actual: int) -> list[tuple[int, int, bool]]:
        """A version 2 file's chunks, as (offset, size, packed), from its chunk index."""
        h = self.header
        tail = h.n_chunks * _U32.size + _U32.size + len(INDEX_MARK)
        between = actual - h.header_size - tail  # bytes the chunks must fill
        if between < 0:
            raise TruncatedError(f"file is truncated: {actual} bytes cannot hold the header "
                                 f"and the chunk index of {h.n_chunks} chunks")
        self._file.seek(self._base + actual - tail)
        data = self._file.read(tail)
        if data[-len(INDEX_MARK):] != INDEX_MARK:
            raise TruncatedError("file is truncated or has bytes appended: it does not end "
                                 "with its chunk index")
        body = data[: -len(INDEX_MARK) - _U32.size]
        if indexed_crc(h.n_chunks, body) != _U32.unpack_from(data, len(body))[0]:
            raise ChecksumError("the chunk index is damaged: checksum mismatch", None)
        chunks, offset = [], h.header_size
        for i, entry in enumerate(np.frombuffer(body, dtype="<u4").tolist()):
            size, packed = entry & ~INDEX_PACKED, bool(entry & INDEX_PACKED)
            full = h.chunk_size(i)
            # A bit-packed chunk has its version 1 size; a range-coded one is whole words
            # plus the CRC, and smaller than bit-packed (else the writer packs it).
            valid = size == full if packed else 8 <= size < full and size % 4 == 0
            if not valid:
                raise ApcError(f"the chunk index is invalid: entry {i} gives "
                               f"{'a bit-packed' if packed else 'a range-coded'} chunk of "
                               f"{size} bytes where the header implies {full} bit-packed")
            chunks.append((offset, size, packed))
            offset += size
        if offset - h.header_size > between:
            raise TruncatedError(f"file is truncated: its chunks need {offset - h.header_size} "
                                 f"bytes, it holds {between}")
        if offset - h.header_size < between:
            raise TrailingDataError(f"{between - offset + h.header_size} unexpected bytes "
                                    "between the last chunk and the chunk index")
        return chunks

    def chunk_bytes(self, index: int) -> int:
        """Bytes of chunk `index` in this file, its CRC included."""
        self.header.chunk_frame_range(index)
        return self._chunks[index][1]

    def _load(self, index: int) -> tuple[bytes, bool]:
        """Chunk `index`'s payload (CRC checked, CRC removed) and whether it is bit-packed."""
        h = self.header
        h.chunk_frame_range(index)
        offset, size, packed = self._chunks[index]
        self._file.seek(self._base + offset)
        data = self._file.read(size)
        label = _chunk_label(h, index)
        if len(data) < size:
            raise TruncatedError(f"{label} is incomplete: {size - len(data)} bytes missing")
        payload = bytes(data[:-_U32.size])
        if indexed_crc(index, payload) != _U32.unpack_from(data, size - _U32.size)[0]:
            raise ChecksumError(f"{label} is damaged: checksum mismatch", index)
        return payload, packed

    def read_chunk(self, index: int) -> np.ndarray:
        """Return chunk `index` as int64 codes (channels, n_codebooks, frames).

        Raises:
            IndexError: No such chunk. ApcError: the chunk is damaged or missing;
            CodeTablesMismatchError: a range-coded chunk, and no tables.
        """
        payload, packed = self._load(index)
        if not packed:
            return decode_coded_chunk(self.header, index, payload, self._tables)
        start, stop = self.header.chunk_frame_range(index)
        return unpack_frames(self.header, payload, stop - start, _chunk_label(self.header, index),
                             index)

    def read_frames(self, start: int, stop: int) -> np.ndarray:
        """Return frames [start, stop), reading only the chunks that hold them.

        Raises:
            ValueError: Not 0 <= start <= stop <= n_frames. ApcError: damaged chunk.
        """
        h = self.header
        if not 0 <= start <= stop <= h.n_frames:
            raise ValueError(f"frame range [{start}, {stop}) is outside [0, {h.n_frames})")
        if start == stop:
            return np.zeros((h.channels, h.n_codebooks, 0), dtype=np.int64)
        first, last = start // h.chunk_frames, (stop - 1) // h.chunk_frames
        block = np.concatenate([self.read_chunk(i) for i in range(first, last + 1)], axis=2)
        offset = first * h.chunk_frames
        return np.ascontiguousarray(block[:, :, start - offset : stop - offset])

    def read_all(self) -> np.ndarray:
        """Return every frame: int64 codes (channels, n_codebooks, n_frames)."""
        return self.read_frames(0, self.header.n_frames)

    def verify(self) -> list[ApcError]:
        """Check every chunk; return the problems found (empty when intact). Range-coded
        chunks are decoded too when the reader has code tables, else only their CRC is
        checked."""
        problems: list[ApcError] = []
        for index in range(self.header.n_chunks):
            try:
                if self._tables is None and not self._chunks[index][2]:
                    self._load(index)
                else:
                    self.read_chunk(index)
            except ApcError as error:
                problems.append(error)
        return problems

    def __iter__(self) -> Iterator[np.ndarray]:
        for index in range(self.header.n_chunks):
            yield self.read_chunk(index)


def write_apc(target: PathOrFile, header: Header, codes: np.ndarray,
              tables: CodeTables | None = None) -> None:
    """Write a whole file: `codes` of shape (channels, n_codebooks, header.n_frames).

    Args:
        target: Path, or binary file open for writing.
        header: The header.
        codes: All the codes.
        tables: The code tables of a version 2 header.
    """
    if isinstance(target, (str, os.PathLike)):
        with open(target, "wb") as fileobj:
            write_apc(fileobj, header, codes, tables)
        return
    with ApcWriter(target, header, tables) as writer:
        writer.write(codes)


def read_apc(source: PathOrFile | bytes, tables: CodeTables | None = None
             ) -> tuple[Header, np.ndarray]:
    """Read a whole file: a path, a seekable binary file, or the bytes themselves
    (`tables`: the code tables a version 2 file needs).

    Returns:
        The header and int64 codes of shape (channels, n_codebooks, n_frames).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as fileobj:
            return read_apc(fileobj, tables)
    reader = ApcReader(source, tables)
    return reader.header, reader.read_all()
