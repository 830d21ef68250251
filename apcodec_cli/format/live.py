"""The live record format: a `.apc` stream written and read as it flows (real-time pipes).

A file needs its length in its header before its payload; a live stream does not know it.
A live stream (flag bit 1 of the header, see `header.py`) therefore has lengths 0 in its
header (and the network fingerprint as its weights fingerprint: records use no code
tables; docs/format.md, "The contract"), and its payload is a sequence of records, each
written and flushed as soon as its frames are coded:

    record i      u16 f (1..chunk_frames), the f frames' codes packed as in a file's
                  chunk, u32 CRC-32 of those 2 + n bytes seeded with i (as a file's chunks)
    lengths rec.  u16 0, u64 source length, u64 coded length, u32 CRC-32 of those 18 bytes
                  seeded with its index i

Records are numbered from 0 in stream order, the lengths record included. The encoder
sends the lengths record as soon as its input has ended, before the records of the last
frames (those that hold the input's end and the streamable model's extra frame), so a
decoder knows where the signal ends before it decodes that far and writes exactly the
input's length. The stream ends once it has held all N frames that the lengths call for
(see `bitstream.py`); an older stream ends right after its lengths record, which then
comes last. A stream that ends before either was cut short.

The coding of such streams (the streamable model run as audio comes in) is the codec
layer's: `apcodec_cli/live.py`. numpy and struct only, no torch.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import BinaryIO, Iterator

import numpy as np

from . import bitstream
from .bitstream import ApcError, ChecksumError, Header, TrailingDataError
from .wavstream import read_exactly as _read_exactly

_COUNT = struct.Struct("<H")
_END = struct.Struct("<HQQ")
_U32 = struct.Struct("<I")


class LiveWriter:
    """Writes a live stream: the header at once, then a record per `chunk_frames` frames.

    Call `end` with the lengths as soon as the input has ended (before writing the last
    frames), then `close`.

    Args:
        fileobj: Binary stream open for writing (flushed after every record).
        header: The header; its lengths are ignored and written as 0.
    """

    def __init__(self, fileobj: BinaryIO, header: Header) -> None:
        self.header = dataclasses.replace(header, live=True, source_length=0, coded_length=0)
        self._file = fileobj
        self._pending = np.zeros((header.channels, header.n_codebooks, 0), np.int64)
        self._index = 0
        self._ended = False
        self.frames = 0
        self._write(self.header.to_bytes())

    def _write(self, data: bytes) -> None:
        self._file.write(data)
        if hasattr(self._file, "flush"):
            self._file.flush()

    def write(self, codes: np.ndarray) -> None:
        """Append (channels, n_codebooks, frames) codes; full records go out at once."""
        self._pending = np.concatenate([self._pending, np.asarray(codes, np.int64)], axis=2)
        while self._pending.shape[2] >= self.header.chunk_frames:
            self._record(self._pending[:, :, :self.header.chunk_frames])
            self._pending = self._pending[:, :, self.header.chunk_frames:]

    def _record(self, codes: np.ndarray) -> None:
        body = _COUNT.pack(codes.shape[2]) + bitstream.pack_frames(self.header, codes)
        self._signed(body)
        self.frames += codes.shape[2]

    def _signed(self, body: bytes) -> None:
        self._write(body + _U32.pack(bitstream.indexed_crc(self._index, body)))
        self._index += 1

    def end(self, source_length: int, coded_length: int) -> None:
        """The input has ended: send its lengths now, ahead of the frames still to come."""
        self._signed(_END.pack(0, source_length, coded_length))
        self._ended = True

    def close(self, source_length: int | None = None, coded_length: int | None = None
              ) -> None:
        """Write the last frames (and the lengths first, if given here rather than `end`)."""
        if source_length is not None and coded_length is not None:
            self.end(source_length, coded_length)
        if not self._ended:
            raise ValueError("a live stream needs its lengths before it closes")
        if self._pending.shape[2]:
            self._record(self._pending)
            self._pending = self._pending[:, :, :0]


class LiveReader:
    """Reads a live stream record by record, from any stream (pipes included).

    Iterating yields (channels, n_codebooks, frames) int64 codes; `file_header` is the
    header with the stream's lengths once its lengths record has been read (before the
    last frames are yielded, in streams that send it early).

    With `skip_damaged`, a frame record whose checksum fails is yielded as code 0 and
    named in `damaged` (its label, first frame, end frame) instead of raising; a damaged
    lengths record still raises.

    Raises (while iterating): TruncatedError, ChecksumError, TrailingDataError, ApcError.
    """

    def __init__(self, fileobj: BinaryIO, header: Header | None = None,
                 skip_damaged: bool = False) -> None:
        self.header = bitstream.read_header(fileobj) if header is None else header
        if not self.header.live:
            raise ApcError("not a live stream")
        self._file = fileobj
        self._skip = skip_damaged
        self.file_header: Header | None = None
        self.damaged: list[tuple[str, int, int]] = []

    def __iter__(self) -> Iterator[np.ndarray]:
        h, index, frames, need = self.header, 0, 0, None
        per_frame = h.channels * h.n_codebooks
        while need is None or frames < need:
            what = f"record {index} (after {frames / h.frame_rate:.2f} s)"
            head = _read_exactly(self._file, _COUNT.size, what)
            (count,) = _COUNT.unpack(head)
            if count == 0:
                if need is not None:
                    raise ApcError(f"{what} gives the stream's lengths a second time")
                body = head + _read_exactly(self._file, _END.size - 2 + 4, "the lengths record")
                self._check_crc(index, body, "the lengths record")
                _, source_length, coded_length = _END.unpack_from(body)
                self.file_header = dataclasses.replace(
                    h, live=False, source_length=source_length, coded_length=coded_length)
                need = self.file_header.n_frames
                index += 1
                continue
            if count > h.chunk_frames:
                raise ApcError(f"{what} claims {count} frames, more than {h.chunk_frames}")
            size = (count * per_frame * h.bits_per_code + 7) // 8
            body = head + _read_exactly(self._file, size + 4, what)
            try:
                self._check_crc(index, body, what)
                codes = bitstream.unpack_frames(h, body[2:-4], count, what, index)
            except ChecksumError:
                if not self._skip:
                    raise
                self.damaged.append((what, frames, frames + count))
                codes = np.zeros((h.channels, h.n_codebooks, count), np.int64)
            frames += count
            if need is not None and frames > need:
                raise ApcError(f"the stream holds more than the {need} frames its lengths need")
            yield codes
            index += 1
        self._check_end()

    @staticmethod
    def _check_crc(index: int, body: bytes, what: str) -> None:
        if bitstream.indexed_crc(index, body[:-4]) != _U32.unpack_from(body, len(body) - 4)[0]:
            raise ChecksumError(f"{what} is damaged: checksum mismatch", index)

    def _check_end(self) -> None:
        if self._file.read(1):
            raise TrailingDataError("unexpected bytes after the end of the stream")

    def read_all(self) -> tuple[Header, np.ndarray]:
        """The whole stream: a file header with its lengths, and all its codes."""
        h = self.header
        codes = list(self)
        whole = np.concatenate(codes, axis=2) if codes else \
            np.zeros((h.channels, h.n_codebooks, 0), np.int64)
        return self.file_header, whole
