"""The header of a `.apc` file, and the exceptions of every kind of damage to one.

The layout of every version is specified byte by byte in docs/format.md. In short: magic
`\\x89APC`, a version byte (1: bit-packed codes; 2: range-coded codes with a chunk index;
3: as 2, with level gains in every chunk), flags, the codec and source geometry, the exact
lengths, the fingerprint of the weights (versions 2 and 3 add the fingerprint of their
network alone), version 3 the code frames per level segment, the model name and a CRC-32.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from typing import BinaryIO

import numpy as np

from ..errors import ApcodecError

MAGIC = b"\x89APC"
VERSION = 1  # the version of a file without code tables (live streams are always version 1)
VERSION_CODED = 2  # range-coded payload, see entropy.py
VERSION_LEVELS = 3  # as version 2, and each chunk starts with level gains (levels.py)
VERSIONS = (VERSION, VERSION_CODED, VERSION_LEVELS)
FLAG_STREAMABLE = 0x01
FLAG_LIVE = 0x02
MAX_LENGTH = 2**48
MAX_MODEL_NAME = 64
# Everything before the model name: 49 bytes in version 1, 57 in version 2 (one more
# fingerprint, the network's), 59 in version 3 (and the code frames per level segment).
_FIXED = {VERSION: struct.Struct("<4sBBHIHBBHHIQQ8sB"),
          VERSION_CODED: struct.Struct("<4sBBHIHBBHHIQQ8s8sB"),
          VERSION_LEVELS: struct.Struct("<4sBBHIHBBHHIQQ8s8sHB")}
_U32 = struct.Struct("<I")
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


class CodeTablesMismatchError(WeightsMismatchError):
    """A range-coded (version 2 or 3) file needs the code tables that coded it, and the tables
    at hand are other ones, or there are none: the same network with other tables cannot
    read it either."""


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


def _check_fingerprint(value: object, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray)) or len(value) != 8:
        raise HeaderError(f"{what} must be exactly 8 bytes")
    return bytes(value)


@dataclasses.dataclass(frozen=True)
class Header:
    """The header of a `.apc` file (layout: docs/format.md).

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
        fingerprint: 8 bytes identifying the weights that made the codes (in versions 2
            and 3, the network and the code tables together).
        model_name: Preset name, 1..64 printable ASCII characters.
        streamable: Whether the causal (streamable) model made the codes.
        live: A live stream: lengths are 0 here and follow the payload (see `live.py`).
        version: 1 (bit-packed codes), 2 (range-coded codes, see `entropy.py`) or 3 (as 2,
            with level gains, see `levels.py`).
        network_fingerprint: Versions 2 and 3: 8 bytes identifying the network alone, so
            that a reader can tell other tables from another network.
        level_frames: Version 3: code frames per level segment (a divisor of
            `chunk_frames`); 0 in versions 1 and 2.

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
    version: int = VERSION
    network_fingerprint: bytes | None = None
    level_frames: int = 0

    def __post_init__(self) -> None:
        for name, (low, high) in _INT_LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise HeaderError(f"header field {name} must be an integer, got {value!r:.40}")
            if not low <= value <= high:
                raise HeaderError(f"header field {name}={value} is outside {low}..{high}")
            object.__setattr__(self, name, int(value))
        object.__setattr__(self, "fingerprint",
                           _check_fingerprint(self.fingerprint, "weights fingerprint"))
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
        self._check_version()
        self._check_levels()

    def _check_levels(self) -> None:
        frames = self.level_frames
        if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)):
            raise HeaderError(f"header field level_frames must be an integer, got {frames!r:.40}")
        if self.version == VERSION_LEVELS:
            if not 1 <= frames <= 0xFFFF or self.chunk_frames % frames:
                raise HeaderError(f"header field level_frames={frames} must divide "
                                  f"chunk_frames={self.chunk_frames}")
        elif frames:
            raise HeaderError(f"a version {self.version} header has no level segments")
        object.__setattr__(self, "level_frames", int(frames))

    def _check_version(self) -> None:
        if self.version not in VERSIONS or isinstance(self.version, bool):
            raise HeaderError(f"format version must be one of {VERSIONS}, got {self.version!r}")
        if self.version == VERSION:
            if self.network_fingerprint is not None:
                raise HeaderError("a version 1 header has no network fingerprint")
            return
        if self.live:
            raise HeaderError("a live stream is always format version 1")
        object.__setattr__(self, "network_fingerprint", _check_fingerprint(
            self.network_fingerprint, f"a version {self.version} header's network fingerprint"))

    @property
    def coded(self) -> bool:
        """Whether the payload may hold range-coded chunks and ends with a chunk index
        (format versions 2 and 3)."""
        return self.version in (VERSION_CODED, VERSION_LEVELS)

    @property
    def needs_tables(self) -> bool:
        """Whether reading the file may need code tables: a version 2 or 3 header whose
        weights fingerprint is not its network's (weights without tables write every
        chunk bit-packed and name the network twice)."""
        return self.coded and self.fingerprint != self.network_fingerprint

    @property
    def has_levels(self) -> bool:
        """Whether every chunk carries level gains (format version 3)."""
        return self.version == VERSION_LEVELS

    @property
    def n_level_segments(self) -> int:
        """Level segments in the file: ceil(n_frames / level_frames); 0 without levels."""
        return -(-self.n_frames // self.level_frames) if self.has_levels else 0

    @property
    def level_samples(self) -> int:
        """Codec-rate samples per level segment (0 without levels)."""
        return self.level_frames * self.samples_per_frame

    def chunk_level_range(self, index: int) -> tuple[int, int]:
        """The level segments [start, stop) whose gains chunk `index` holds (none without
        levels)."""
        start, stop = self.chunk_frame_range(index)
        if not self.has_levels:
            return 0, 0
        return start // self.level_frames, -(-stop // self.level_frames)

    def level_bytes(self, index: int) -> int:
        """Bytes of level gains at the start of chunk `index`: one per segment and channel."""
        start, stop = self.chunk_level_range(index)
        return (stop - start) * self.channels

    @property
    def n_frames(self) -> int:
        """Code frames in the file: ceil(coded_length / samples_per_frame), plus one for a
        streamable model's codes (see docs/format.md)."""
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
        return _FIXED[self.version].size + len(self.model_name) + _U32.size

    @property
    def nominal_bitrate(self) -> float:
        """Bits per second of the codes alone at `bits_per_code` each, all channels."""
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
        """Return the bytes of chunk `index` with its codes bit-packed, its level gains and
        CRC included: the size of every version 1 chunk, and of a version 2 or 3 chunk
        stored unpacked."""
        start, stop = self.chunk_frame_range(index)
        bits = (stop - start) * self.channels * self.n_codebooks * self.bits_per_code
        return self.level_bytes(index) + (bits + 7) // 8 + _U32.size

    def _require_v1(self, what: str) -> None:
        if self.coded:
            raise ValueError(f"a version {self.version} file's {what} is in its chunk index, "
                             "not its header")

    def chunk_offset(self, index: int) -> int:
        """Return the byte offset of chunk `index` from the start of a version 1 file."""
        self._require_v1("chunk offsets")
        self.chunk_frame_range(index)
        return self.header_size + index * self.chunk_size(0)

    @property
    def payload_size(self) -> int:
        """Bytes of all chunks of a version 1 file together."""
        self._require_v1("payload size")
        if self.n_chunks == 0:
            return 0
        return (self.n_chunks - 1) * self.chunk_size(0) + self.chunk_size(self.n_chunks - 1)

    @property
    def file_size(self) -> int:
        """Bytes of a whole version 1 file."""
        return self.header_size + self.payload_size

    def to_bytes(self) -> bytes:
        """Serialise the header, CRC included."""
        name = self.model_name.encode("ascii")
        fingerprints: tuple = (self.fingerprint,) if self.version == VERSION else (
            self.fingerprint, self.network_fingerprint)
        if self.has_levels:
            fingerprints += (self.level_frames,)
        body = _FIXED[self.version].pack(
            MAGIC, self.version,
            (FLAG_STREAMABLE if self.streamable else 0) | (FLAG_LIVE if self.live else 0),
            self.header_size,
            self.sample_rate, self.samples_per_frame, self.n_codebooks, self.bits_per_code,
            self.chunk_frames, self.channels, self.source_sample_rate, self.source_length,
            self.coded_length, *fingerprints, len(name),
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
        if len(data) > 4 and data[4] not in VERSIONS:
            raise UnsupportedVersionError(
                f"unsupported .apc format version {data[4]} "
                f"(this reader supports versions {', '.join(map(str, VERSIONS))})")
        fixed = _FIXED[data[4] if len(data) > 4 else VERSION]
        if len(data) < fixed.size or len(data) < fixed.size + data[fixed.size - 1] + 4:
            raise TruncatedError(f"file is truncated: the header is incomplete ({len(data)} bytes)")
        fields = fixed.unpack_from(data)
        end = fixed.size + fields[-1]
        if zlib.crc32(data[:end]) != _U32.unpack_from(data, end)[0]:
            raise ChecksumError("header is damaged: checksum mismatch", None)
        version, flags, length = fields[1:4]
        if flags & ~(FLAG_STREAMABLE | FLAG_LIVE):
            raise HeaderError(f"reserved header flag bits are set (flags=0x{flags:02x})")
        if length != end + _U32.size:
            raise HeaderError(f"header length field says {length} bytes, the header has {end + 4}")
        try:
            name = data[fixed.size : end].decode("ascii")
        except UnicodeDecodeError:
            raise HeaderError("model name is not ASCII") from None
        return cls(*fields[4:14], model_name=name, streamable=bool(flags & FLAG_STREAMABLE),
                   live=bool(flags & FLAG_LIVE), version=version,
                   network_fingerprint=fields[14] if version != VERSION else None,
                   level_frames=fields[15] if version == VERSION_LEVELS else 0)


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
    data = fileobj.read(5)
    fixed = _FIXED.get(data[4] if len(data) == 5 else VERSION, _FIXED[VERSION])
    data += fileobj.read(fixed.size - len(data))
    if len(data) == fixed.size:
        data += fileobj.read(data[-1] + _U32.size)
    return Header.from_bytes(data)
