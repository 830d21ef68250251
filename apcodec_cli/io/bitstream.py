"""The `.apc` file format: a header, then CRC-protected chunks of bit-packed codes.

Format version 1. All integers are little-endian. A file is a header followed by the
payload chunks and nothing else.

Header, 53 + n bytes where n is the length of the model name::

    offset size field
    0      4    magic: bytes 0x89 0x41 0x50 0x43 (0x89 then "APC"); the non-ASCII
                first byte exposes text-mode transfers, as in PNG
    4      1    format version, u8 = 1
    5      1    flags, u8: bit 0 set when the streamable (causal) model made the
                codes; bit 1 set for a live stream (below); bits 2..7 are reserved
                and must be 0
    6      2    header length in bytes including the final CRC, u16 (= 53 + n)
    8      4    codec sample rate in Hz, u32
    12     2    samples per code frame S, u16
    14     1    number of codebooks K, u8 (1..64)
    15     1    bits per code B, u8 (1..16)
    16     2    chunk_frames F: code frames per payload chunk, u16
    18     2    channels C, u16 (1..1024)
    20     4    source sample rate in Hz, u32: the rate of the original input
    24     8    source length, u64: samples per channel at the source rate
    32     8    coded length L, u64: samples per channel at the codec rate; the
                decoder trims its output to this many samples
    40     8    weights fingerprint: identifies the weights that made the codes
    48     1    model name length n, u8 (1..64)
    49     n    model name, printable ASCII (0x20..0x7E)
    49+n   4    CRC-32 (as zlib.crc32) of header bytes [0, 49+n)

Payload. The file holds N = ceil(L / S) code frames, or ceil(L / S) + 1 when flag bit 0
is set and L > 0 (a streamable model's output lags its input by less than a frame, so one
more frame of codes finishes the last samples). They are split into ceil(N / F) chunks;
chunk i holds frames [i*F, min((i+1)*F, N)). A chunk lists its codes frame by frame,
within a frame channel by channel, within a channel codebook by codebook. Every code
is a B-bit unsigned integer written most significant bit first; the bits are
concatenated and padded with zero bits to a whole byte. The chunk ends with a u32
CRC-32 of those bytes seeded with the chunk index, in zlib terms
crc32(payload, crc32(u32le(i))), so a chunk moved to another position fails its check.
A chunk of f frames thus takes ceil(f*C*K*B / 8) + 4 bytes; all chunks but the last
are the same size, so chunk i starts at header_length + i * size(chunk 0). The file
ends right after the last chunk. A file with L = 0 has no chunks.

A live stream (flag bit 1), written by a real-time encoder that cannot know the length
in advance, has source and coded lengths 0 in its header; its payload is a sequence of
records of at most F frames, each prefixed with its frame count, and a record that gives
the two lengths (sent before the last frames). `live.py` defines and reads those records.

Readers must reject a wrong magic, an unknown version, set reserved flag bits, a
header length field that disagrees with n, any CRC mismatch, non-zero padding bits,
missing bytes and bytes after the last chunk.
"""

from __future__ import annotations

import dataclasses
import io
import os
import struct
import zlib
from types import TracebackType
from typing import BinaryIO, Iterator, Union

import numpy as np

from ..errors import ApcodecError

MAGIC = b"\x89APC"
VERSION = 1
FLAG_STREAMABLE = 0x01
FLAG_LIVE = 0x02
MAX_LENGTH = 2**48
MAX_MODEL_NAME = 64
_FIXED = struct.Struct("<4sBBHIHBBHHIQQ8sB")  # everything before the model name: 49 bytes
_U32 = struct.Struct("<I")
_MIN_HEADER = _FIXED.size + 1 + _U32.size
_INT_LIMITS = {
    "sample_rate": (1, 1_000_000),
    "samples_per_frame": (1, 0xFFFF),
    "n_codebooks": (1, 64),
    "bits_per_code": (1, 16),
    "chunk_frames": (1, 0xFFFF),
    "channels": (1, 1024),
    "source_sample_rate": (1, 1_000_000),
    "source_length": (0, MAX_LENGTH),
    "coded_length": (0, MAX_LENGTH),
}

PathOrFile = Union[str, "os.PathLike[str]", BinaryIO]


class ApcError(ApcodecError, ValueError):
    """Base of every problem with a `.apc` file; the message is one line."""


class BadMagicError(ApcError):
    """The data does not start with the `.apc` magic bytes."""


class UnsupportedVersionError(ApcError):
    """The file uses a format version this reader does not know."""


class HeaderError(ApcError):
    """A header field is out of range or inconsistent with the others."""


class TruncatedError(ApcError):
    """The data ends before the header or the payload is complete."""


class TrailingDataError(ApcError):
    """Bytes follow the last chunk."""


class WeightsMismatchError(ApcError):
    """The codes were made by other weights than the loaded ones (raised by the codec)."""


class LiveStreamError(ApcError):
    """A live stream was given where a file with random access is needed."""


class ChecksumError(ApcError):
    """A CRC mismatch or non-zero padding: the header or one chunk is damaged.

    Attributes:
        chunk: Index of the damaged chunk, or None when the header is damaged.
    """

    def __init__(self, message: str, chunk: int | None = None) -> None:
        super().__init__(message)
        self.chunk = chunk


@dataclasses.dataclass(frozen=True)
class Header:
    """The header of a `.apc` file (see the module docstring for the layout).

    Attributes:
        sample_rate: Codec sample rate in Hz.
        samples_per_frame: Codec-rate samples per code frame.
        n_codebooks: Codes per frame and channel.
        bits_per_code: Bits of one code.
        chunk_frames: Code frames per payload chunk.
        channels: Audio channels, each coded separately.
        source_sample_rate: Sample rate of the original input in Hz.
        source_length: Samples per channel of the input at its own rate.
        coded_length: Samples per channel at the codec rate.
        fingerprint: 8 bytes identifying the weights that made the codes.
        model_name: Preset name, 1..64 printable ASCII characters.
        streamable: Whether the causal (streamable) model made the codes.
        live: A live stream: lengths are 0 here and follow the payload (see `live.py`).

    Raises:
        HeaderError: A field is out of range.
    """

    sample_rate: int
    samples_per_frame: int
    n_codebooks: int
    bits_per_code: int
    chunk_frames: int
    channels: int
    source_sample_rate: int
    source_length: int
    coded_length: int
    fingerprint: bytes
    model_name: str
    streamable: bool = False
    live: bool = False

    def __post_init__(self) -> None:
        for name, (low, high) in _INT_LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise HeaderError(f"header field {name} must be an integer, got {value!r:.40}")
            if not low <= value <= high:
                raise HeaderError(f"header field {name}={value} is outside {low}..{high}")
            object.__setattr__(self, name, int(value))
        if not isinstance(self.fingerprint, (bytes, bytearray)) or len(self.fingerprint) != 8:
            raise HeaderError("weights fingerprint must be exactly 8 bytes")
        object.__setattr__(self, "fingerprint", bytes(self.fingerprint))
        name = self.model_name
        if (
            not isinstance(name, str)
            or not 1 <= len(name) <= MAX_MODEL_NAME
            or not all(" " <= c <= "~" for c in name)
        ):
            raise HeaderError(
                f"model name must be 1..64 printable ASCII characters, got {name!r:.80}")
        object.__setattr__(self, "streamable", bool(self.streamable))
        object.__setattr__(self, "live", bool(self.live))
        if self.live and (self.source_length or self.coded_length):
            raise HeaderError("a live stream's header must give lengths 0")

    @property
    def n_frames(self) -> int:
        """Code frames in the file: ceil(coded_length / samples_per_frame), plus one for a
        streamable model's codes (see the module docstring)."""
        frames = -(-self.coded_length // self.samples_per_frame)
        return frames + 1 if self.streamable and frames else frames

    @property
    def n_chunks(self) -> int:
        """Payload chunks in the file: ceil(n_frames / chunk_frames)."""
        return -(-self.n_frames // self.chunk_frames)

    @property
    def frame_rate(self) -> float:
        """Code frames per second."""
        return self.sample_rate / self.samples_per_frame

    @property
    def duration(self) -> float:
        """Length of the coded audio in seconds."""
        return self.coded_length / self.sample_rate

    @property
    def header_size(self) -> int:
        """Bytes of the header, CRC included."""
        return _MIN_HEADER - 1 + len(self.model_name)

    @property
    def nominal_bitrate(self) -> float:
        """Bits per second of the codes alone, all channels together."""
        return self.frame_rate * self.n_codebooks * self.bits_per_code * self.channels

    def chunk_frame_range(self, index: int) -> tuple[int, int]:
        """Return the frames [start, stop) held by chunk `index`.

        Raises:
            IndexError: The file has no chunk `index`.
        """
        if not 0 <= index < self.n_chunks:
            raise IndexError(f"chunk index {index} out of range 0..{self.n_chunks - 1}")
        start = index * self.chunk_frames
        return start, min(start + self.chunk_frames, self.n_frames)

    def chunk_size(self, index: int) -> int:
        """Return the bytes of chunk `index`, its CRC included."""
        start, stop = self.chunk_frame_range(index)
        bits = (stop - start) * self.channels * self.n_codebooks * self.bits_per_code
        return (bits + 7) // 8 + _U32.size

    def chunk_offset(self, index: int) -> int:
        """Return the byte offset of chunk `index` from the start of the file."""
        self.chunk_frame_range(index)
        return self.header_size + index * self.chunk_size(0)

    @property
    def payload_size(self) -> int:
        """Bytes of all chunks together."""
        if self.n_chunks == 0:
            return 0
        return (self.n_chunks - 1) * self.chunk_size(0) + self.chunk_size(self.n_chunks - 1)

    @property
    def file_size(self) -> int:
        """Bytes of the whole file."""
        return self.header_size + self.payload_size

    def to_bytes(self) -> bytes:
        """Serialise the header, CRC included."""
        name = self.model_name.encode("ascii")
        body = _FIXED.pack(
            MAGIC, VERSION,
            (FLAG_STREAMABLE if self.streamable else 0) | (FLAG_LIVE if self.live else 0),
            self.header_size,
            self.sample_rate, self.samples_per_frame, self.n_codebooks, self.bits_per_code,
            self.chunk_frames, self.channels, self.source_sample_rate, self.source_length,
            self.coded_length, self.fingerprint, len(name),
        ) + name
        return body + _U32.pack(zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes) -> Header:
        """Parse a header from the start of `data` (bytes after it are ignored).

        Raises:
            BadMagicError, UnsupportedVersionError, TruncatedError, ChecksumError
            (chunk None), HeaderError: checked in that order.
        """
        data = bytes(data)
        if data[:4] != MAGIC[: len(data)]:
            raise BadMagicError("not an .apc file: bad magic bytes")
        if len(data) > 4 and data[4] != VERSION:
            raise UnsupportedVersionError(
                f"unsupported .apc format version {data[4]} "
                f"(this reader supports version {VERSION})")
        if len(data) < _FIXED.size or len(data) < _FIXED.size + data[_FIXED.size - 1] + 4:
            raise TruncatedError(f"file is truncated: the header is incomplete ({len(data)} bytes)")
        fields = _FIXED.unpack_from(data)
        end = _FIXED.size + fields[-1]
        if zlib.crc32(data[:end]) != _U32.unpack_from(data, end)[0]:
            raise ChecksumError("header is damaged: checksum mismatch", None)
        flags, length = fields[2], fields[3]
        if flags & ~(FLAG_STREAMABLE | FLAG_LIVE):
            raise HeaderError(f"reserved header flag bits are set (flags=0x{flags:02x})")
        if length != end + _U32.size:
            raise HeaderError(f"header length field says {length} bytes, the header has {end + 4}")
        try:
            name = data[_FIXED.size : end].decode("ascii")
        except UnicodeDecodeError:
            raise HeaderError("model name is not ASCII") from None
        return cls(*fields[4:14], model_name=name, streamable=bool(flags & FLAG_STREAMABLE),
                   live=bool(flags & FLAG_LIVE))


def peek_header(fileobj: BinaryIO) -> Header:
    """Read and validate the header of a seekable file, leaving the position unchanged."""
    base = fileobj.tell()
    try:
        return read_header(fileobj)
    finally:
        fileobj.seek(base)


def read_header(fileobj: BinaryIO) -> Header:
    """Read and validate a header, leaving `fileobj` just after it.

    Raises:
        ApcError: The header is missing, damaged or invalid (see `Header.from_bytes`).
    """
    data = fileobj.read(_FIXED.size)
    if len(data) == _FIXED.size:
        data += fileobj.read(data[-1] + _U32.size)
    return Header.from_bytes(data)


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


class ApcWriter:
    """Write a `.apc` file: the header at once, then chunks as whole chunks fill.

    Args:
        fileobj: Binary file open for writing; not closed by the writer.
        header: The header; `header.n_frames` frames must be written before `close`.
    """

    def __init__(self, fileobj: BinaryIO, header: Header) -> None:
        self.header = header
        self._file = fileobj
        self._pending: list[np.ndarray] = []
        self._pending_frames = 0
        self._next_chunk = 0
        self._frames = 0
        self._closed = False
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

    def _emit(self, final: bool) -> None:
        """Write every full pending chunk, and the partial rest too when `final`."""
        step = self.header.chunk_frames
        block = np.concatenate(self._pending, axis=2) if self._pending else None
        pos, total = 0, self._pending_frames
        while block is not None and (total - pos >= step or (final and pos < total)):
            piece = block[:, :, pos : pos + step]
            self._file.write(encode_chunk(self.header, self._next_chunk, piece))
            self._next_chunk += 1
            pos += piece.shape[2]
        self._pending = [block[:, :, pos:].copy()] if block is not None and pos < total else []
        self._pending_frames = total - pos

    def close(self) -> None:
        """Write the last partial chunk; the file object itself stays open.

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

    Raises:
        ValueError: `fileobj` is not seekable.
        ApcError: Bad header (see `Header.from_bytes`); TruncatedError or
            TrailingDataError when the file size disagrees with the header.
    """

    def __init__(self, fileobj: BinaryIO) -> None:
        seekable = getattr(fileobj, "seekable", None)
        if seekable is None or not seekable():
            raise ValueError("ApcReader needs a seekable file; wrap the bytes in io.BytesIO")
        self._file = fileobj
        self._base = fileobj.tell()
        self.header = read_header(fileobj)
        if self.header.live:
            raise LiveStreamError("a live stream has no random access: read it with "
                                  "live.LiveReader")
        self._check_size()

    def _check_size(self) -> None:
        h = self.header
        self._file.seek(0, io.SEEK_END)
        actual = self._file.tell() - self._base
        if actual < h.file_size:
            index = min((actual - h.header_size) // h.chunk_size(0), h.n_chunks - 1)
            raise TruncatedError(f"file is truncated: {_chunk_label(h, index)} is incomplete, "
                                 f"{h.file_size - actual} bytes missing")
        if actual > h.file_size:
            raise TrailingDataError(f"{actual - h.file_size} unexpected bytes after the last chunk")

    def read_chunk(self, index: int) -> np.ndarray:
        """Return chunk `index` as int64 codes (channels, n_codebooks, frames).

        Raises:
            IndexError: No such chunk. ApcError: the chunk is damaged or missing.
        """
        h = self.header
        self._file.seek(self._base + h.chunk_offset(index))
        return decode_chunk(h, index, self._file.read(h.chunk_size(index)))

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
        """Check every chunk; return the problems found (empty when intact)."""
        problems: list[ApcError] = []
        for index in range(self.header.n_chunks):
            try:
                self.read_chunk(index)
            except ApcError as error:
                problems.append(error)
        return problems

    def __iter__(self) -> Iterator[np.ndarray]:
        for index in range(self.header.n_chunks):
            yield self.read_chunk(index)


def write_apc(target: PathOrFile, header: Header, codes: np.ndarray) -> None:
    """Write a whole file: `codes` of shape (channels, n_codebooks, header.n_frames).

    Args:
        target: Path, or binary file open for writing.
        header: The header.
        codes: All the codes.
    """
    if isinstance(target, (str, os.PathLike)):
        with open(target, "wb") as fileobj:
            write_apc(fileobj, header, codes)
        return
    with ApcWriter(target, header) as writer:
        writer.write(codes)


def read_apc(source: PathOrFile | bytes) -> tuple[Header, np.ndarray]:
    """Read a whole file: a path, a seekable binary file, or the bytes themselves.

    Returns:
        The header and int64 codes of shape (channels, n_codebooks, n_frames).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as fileobj:
            return read_apc(fileobj)
    reader = ApcReader(source)
    return reader.header, reader.read_all()
