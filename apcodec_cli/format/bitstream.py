"""The `.apc` file format: a header, then CRC-protected chunks of codes; writer and reader.

Specified byte by byte in docs/format.md; the header is `header.py`, the chunks and the
chunk index `chunks.py`, this module puts them together. A file holds its code
frames in chunks of `chunk_frames` frames, each chunk with a CRC-32 seeded with its index,
so that a reader can name the damaged chunk and its time and read any chunk on its own:

- version 1: every chunk holds its codes bit-packed, `bits_per_code` bits each, so every
  chunk's size and place follow from the header;
- version 2: each chunk is range-coded on its own with the code tables stored in the
  weights (`entropy.py`), or bit-packed as in version 1 where that is not larger; chunks
  therefore differ in size, and a chunk index at the end of the file gives each one's size;
- version 3: as version 2, and each chunk starts with the level gains of its segments
  (`levels.py`), one signed byte per segment and channel.

Readers reject a wrong magic, an unknown version, any CRC mismatch, non-zero padding bits,
missing bytes and bytes after the end. This module needs numpy and struct, no torch.
"""

from __future__ import annotations

import io
import os
import struct
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Iterable, Iterator, Union

import numpy as np

from .chunks import (  # noqa: F401 - re-exported: the format's API in one place
    INDEX_MARK, INDEX_PACKED, as_gains, check_codes, check_levels, check_tables, chunk_index,
    chunk_label, decode_chunk, decode_coded_chunk, encode_chunk, encode_coded_chunk,
    index_entry, indexed_crc, pack_codes, pack_frames, split_levels, unpack_codes,
    unpack_frames)
from .header import (  # noqa: F401 - re-exported
    MAGIC, VERSION, VERSION_CODED, VERSION_LEVELS, VERSIONS, ApcError, BadMagicError, ChecksumError,
    CodeTablesMismatchError, Header, HeaderError, LiveStreamError, TrailingDataError,
    TruncatedError, UnsupportedVersionError, WeightsMismatchError, peek_header, read_header)

if TYPE_CHECKING:
    from .entropy import CodeTables

_U32 = struct.Struct("<I")
PathOrFile = Union[str, "os.PathLike[str]", BinaryIO]


class ApcWriter:
    """Write a `.apc` file: the header at once, then chunks as whole chunks fill.

    Args:
        fileobj: Binary file open for writing; not closed by the writer.
        header: The header; `header.n_frames` frames must be written before `close`.
        tables: The code tables of a version 2 or 3 header (those its fingerprint names).

    A version 3 file's level gains come with the codes (`write`): a chunk is written once
    its frames and the gains of its segments are there.

    Raises:
        CodeTablesMismatchError: A version 2 or 3 header without its tables, or the reverse.
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
        self._levels = np.zeros((header.channels, 0), np.int8)  # gains not yet written
        self._file = fileobj
        self._pending: list[np.ndarray] = []
        self._pending_frames = 0
        self._next_chunk = 0
        self._frames = 0
        self._closed = False
        self._index: list[int] = []
        fileobj.write(header.to_bytes())

    def write(self, codes: np.ndarray, levels: np.ndarray | None = None) -> None:
        """Append codes of shape (channels, n_codebooks, frames), any number of frames, and
        in version 3 the level gains of the next segments, (channels, segments) int8 (any
        number: a chunk waits until its segments' gains are there).

        Raises:
            ValueError: Wrong shape, dtype or values, gains in a file without them, or
                the writer is closed.
            ApcError: More frames or gains than the header announces.
        """
        if self._closed:
            raise ValueError("write to a closed ApcWriter")
        arr = check_codes(self.header, codes)
        if self._frames + arr.shape[2] > self.header.n_frames:
            raise ApcError(f"too many code frames: the header announces {self.header.n_frames}")
        if levels is not None:
            self._add_levels(levels)
        if arr.shape[2]:
            self._pending.append(arr)
            self._pending_frames += arr.shape[2]
            self._frames += arr.shape[2]
        if self._pending_frames:
            self._emit(final=False)

    def _add_levels(self, levels: np.ndarray) -> None:
        h = self.header
        if not h.has_levels:
            raise ValueError(f"a version {h.version} file holds no level gains")
        if np.ndim(levels) != 2 or np.shape(levels)[0] != h.channels:
            raise ValueError(f"level gains must have shape (channels, segments) = "
                             f"({h.channels}, segments), got {np.shape(levels)}")
        arr = as_gains(levels)
        written = h.chunk_level_range(self._next_chunk)[0] if self._next_chunk < h.n_chunks \
            else h.n_level_segments
        if written + self._levels.shape[1] + arr.shape[1] > h.n_level_segments:
            raise ApcError(f"too many level gains: the header announces {h.n_level_segments}")
        self._levels = np.concatenate([self._levels, arr], axis=1)

    def _ready(self, frames: int) -> bool:
        """Whether the next chunk, of `frames` frames, has its level gains."""
        if not self.header.has_levels:
            return True
        return self._levels.shape[1] >= -(-frames // self.header.level_frames)

    def _chunk(self, codes: np.ndarray) -> bytes:
        index = self._next_chunk
        self._next_chunk += 1
        levels = None
        if self.header.has_levels:
            start, stop = self.header.chunk_level_range(index)
            levels, self._levels = self._levels[:, :stop - start], self._levels[:, stop - start:]
        if self._tables is None:
            data, packed = encode_chunk(self.header, index, codes, levels), True
        else:
            data, packed = encode_coded_chunk(self.header, index, codes, self._tables, levels)
        if self.header.coded:
            self._index.append(index_entry(len(data), packed))
        return data

    def _emit(self, final: bool) -> None:
        """Write every pending chunk that is whole (the file's last one: once every frame
        is in) and has its level gains; with `final`, a chunk without them is an error."""
        h = self.header
        block = np.concatenate(self._pending, axis=2) if self._pending else None
        pos, total = 0, self._pending_frames
        while block is not None and pos < total:
            last = self._next_chunk == h.n_chunks - 1 and self._frames == h.n_frames
            if total - pos < h.chunk_frames and not last:
                break
            piece = block[:, :, pos : pos + h.chunk_frames]
            if not self._ready(piece.shape[2]):
                if final:
                    raise ApcError(f"{chunk_label(h, self._next_chunk)} has no level gains: "
                                   "fewer were written than the header announces")
                break
            self._file.write(self._chunk(piece))
            pos += piece.shape[2]
        self._pending = [block[:, :, pos:].copy()] if block is not None and pos < total else []
        self._pending_frames = total - pos

    def close(self) -> None:
        """Write the last partial chunk (and a version 2 or 3 file's chunk index); the file
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


class ApcReader:
    """Random access to the chunks of a `.apc` file.

    Args:
        fileobj: Seekable binary file positioned at the header (wrap bytes from a pipe
            in io.BytesIO); it is not closed by the reader.
        tables: Code tables for a version 2 or 3 file (from the weights that made it).
            Without them its header, chunk index, CRCs and level gains can still be read
            and checked.

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
            raise TruncatedError(f"file is truncated: {chunk_label(h, index)} is incomplete, "
                                 f"{h.file_size - actual} bytes missing")
        if actual > h.file_size:
            raise TrailingDataError(f"{actual - h.file_size} unexpected bytes after the last chunk")
        return [(h.chunk_offset(i), h.chunk_size(i), True) for i in range(h.n_chunks)]

    def _read_index(self, actual: int) -> list[tuple[int, int, bool]]:
        """A version 2 or 3 file's chunks, as (offset, size, packed), from its chunk index."""
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
            full, gains = h.chunk_size(i), h.level_bytes(i)
            # A bit-packed chunk has its full size; a range-coded one is its level gains,
            # whole words and the CRC, and smaller than bit-packed (else the writer packs it).
            valid = size == full if packed else \
                8 + gains <= size < full and (size - gains) % 4 == 0
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

    def chunk_offset(self, index: int) -> int:
        """Byte offset of chunk `index` from the start of the file."""
        self.header.chunk_frame_range(index)
        return self._chunks[index][0]

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
        label = chunk_label(h, index)
        if len(data) < size:
            raise TruncatedError(f"{label} is incomplete: {size - len(data)} bytes missing")
        payload = bytes(data[:-_U32.size])
        if indexed_crc(index, payload) != _U32.unpack_from(data, size - _U32.size)[0]:
            raise ChecksumError(f"{label} is damaged: checksum mismatch", index)
        return payload, packed

    def check_chunk(self, index: int) -> None:
        """Check chunk `index`'s size and CRC without decoding it.

        Raises:
            IndexError: No such chunk. TruncatedError, ChecksumError: it is damaged.
        """
        self._load(index)

    def read_chunk(self, index: int) -> np.ndarray:
        """Return chunk `index` as int64 codes (channels, n_codebooks, frames).

        Raises:
            IndexError: No such chunk. ApcError: the chunk is damaged or missing;
            CodeTablesMismatchError: a range-coded chunk, and no tables.
        """
        payload, packed = self._load(index)
        payload = split_levels(self.header, index, payload)[1]
        if not packed:
            return decode_coded_chunk(self.header, index, payload, self._tables)
        start, stop = self.header.chunk_frame_range(index)
        return unpack_frames(self.header, payload, stop - start, chunk_label(self.header, index),
                             index)

    def read_levels(self, index: int) -> np.ndarray:
        """Return chunk `index`'s level gains, (channels, its segments) int8 steps; (channels,
        0) in a file without levels.

        Raises:
            IndexError: No such chunk. ApcError: the chunk is damaged or missing.
        """
        if not self.header.has_levels:
            self.header.chunk_frame_range(index)
            return np.zeros((self.header.channels, 0), np.int8)
        return split_levels(self.header, index, self._load(index)[0])[0]

    def levels(self, chunks: Iterable[int] | None = None, skip: Iterable[int] = ()
               ) -> np.ndarray:
        """The level gains (channels, header.n_level_segments) int8 of a version 3 file:
        those of `chunks` (default: all) as stored; every other segment's, and those of
        the chunks in `skip` (damaged ones, say), 0 (0 dB).

        Raises:
            ApcError: A chunk read is damaged or missing.
        """
        h = self.header
        gains = np.zeros((h.channels, h.n_level_segments), np.int8)
        left_out = set(skip)
        for index in range(h.n_chunks) if chunks is None else chunks:
            if index not in left_out:
                start, stop = h.chunk_level_range(index)
                gains[:, start:stop] = self.read_levels(index)
        return gains

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
              tables: CodeTables | None = None, levels: np.ndarray | None = None) -> None:
    """Write a whole file: `codes` of shape (channels, n_codebooks, header.n_frames).

    Args:
        target: Path (written atomically), or binary file open for writing.
        header: The header.
        codes: All the codes.
        tables: The code tables of a version 2 or 3 header.
        levels: The level gains of a version 3 header (see `ApcWriter`).
    """
    if isinstance(target, (str, os.PathLike)):
        from .atomic import atomic_write  # a failure leaves no partial file

        with atomic_write(target) as fileobj:
            write_apc(fileobj, header, codes, tables, levels)
        return
    with ApcWriter(target, header, tables) as writer:
        writer.write(codes, levels)


def read_apc(source: PathOrFile | bytes, tables: CodeTables | None = None
             ) -> tuple[Header, np.ndarray]:
    """Read a whole file: a path, a seekable binary file, or the bytes themselves
    (`tables`: the code tables a version 2 or 3 file needs).

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
