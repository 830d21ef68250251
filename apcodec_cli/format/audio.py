"""Audio in and out: reading any soundfile format in blocks, resampling, writing audio.

No torch here. Audio arrays are float32 (channels, samples). Resampling uses soxr's
streaming resampler, so a file of any length passes through in bounded memory, and its
length after resampling is fixed by `resampled_length` (round half up, what soxr gives).
Input holding NaN or infinity is refused (it would spread through a whole chunk of codes).
Outputs are written in the format their name says (`output_format`); a stream that cannot
seek (stdout) gets WAV written front to back (`WavStreamWriter`).
"""

from __future__ import annotations

import dataclasses
import os
import struct
from typing import Any, BinaryIO, Iterator

import numpy as np
import soundfile as sf
import soxr

from ..errors import ApcodecError
from ..units import MAX_SOURCE_RATE, MIN_SOURCE_RATE, resampled_length  # noqa: F401 - re-exported

#: Extensions taken as audio when encoding a folder (what libsndfile reads, plus aliases).
AUDIO_EXTENSIONS = frozenset(
    {f".{ext.lower()}" for ext in sf.available_formats()} | {".opus", ".oga", ".aif", ".wave"}
)
#: Seconds of audio read from disk at a time.
BLOCK_SECONDS = 5.0


class AudioError(ApcodecError):
    """An input file that cannot be read as audio, or an output that cannot be written."""


class OutputFormatError(AudioError, ValueError):
    """An output name, or --float, asks for audio in a form that cannot be written."""


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What a source file holds: rate in Hz, channel count, samples per channel."""

    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def _native(path: Any) -> Any:
    """A path as bytes for libsndfile: soundfile encodes str names strictly, which fails
    for names that are not UTF-8 (held by Python as surrogate escapes); file objects pass."""
    return os.fsencode(path) if isinstance(path, (str, os.PathLike)) else path


def _open(source: str | BinaryIO) -> sf.SoundFile:
    try:
        return sf.SoundFile(_native(source))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        detail = getattr(exc, "error_string", None) or str(exc).splitlines()[0]
        raise AudioError(f"cannot read as audio: {detail.rstrip('.')}") from None


def check_finite(block: np.ndarray, offset: int, rate: int) -> None:
    """Raise AudioError naming the time of the first NaN or infinite sample of a (C, n)
    block that starts `offset` samples into a signal at `rate` Hz."""
    finite = np.isfinite(block)
    if not finite.all():
        first = int(np.flatnonzero(~finite.all(axis=0))[0])
        raise AudioError(f"the input holds a NaN or infinite sample at "
                         f"{(offset + first) / rate:.3f} s: refusing to code it")


def check_source_rate(rate: int) -> None:
    """Raise AudioError for an input rate outside MIN_SOURCE_RATE..MAX_SOURCE_RATE: a
    header's claim that would turn a small file into hours of audio (or none)."""
    if not MIN_SOURCE_RATE <= rate <= MAX_SOURCE_RATE:
        raise AudioError(f"the input's sample rate {rate} Hz is outside "
                         f"{MIN_SOURCE_RATE}..{MAX_SOURCE_RATE} Hz: a damaged or mislabelled "
                         "header; resample it first if it is real")


def probe(source: str | BinaryIO) -> AudioInfo:
    """Rate, channels and length of an audio file without reading its samples.

    Raises:
        AudioError: Not audio, or a rate that `check_source_rate` refuses.
    """
    with _open(source) as f:
        info = AudioInfo(f.samplerate, f.channels, f.frames)
    check_source_rate(info.sample_rate)
    return info


class _Resampler:
    """Streaming resampler of (C, n) blocks that emits exactly `total` samples in all."""

    def __init__(self, rate_in: int, rate_out: int, channels: int, total: int) -> None:
        self._stream = None if rate_in == rate_out else soxr.ResampleStream(
            rate_in, rate_out, channels, dtype="float32", quality="VHQ")
        self._left = total

    def __call__(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        out = block if self._stream is None else \
            self._stream.resample_chunk(np.ascontiguousarray(block.T), last=last).T
        out = out[:, :self._left]
        if last and out.shape[1] < self._left:  # never short: pad the rounding remainder
            out = np.pad(out, ((0, 0), (0, self._left - out.shape[1])))
        self._left -= out.shape[1]
        return np.ascontiguousarray(out, dtype=np.float32)


def read_blocks(source: str | BinaryIO, rate: int, mono: bool = False,
                block_seconds: float = BLOCK_SECONDS) -> tuple[AudioInfo, int, Iterator[np.ndarray]]:
    """Open an audio file and stream it at `rate` Hz.

    Args:
        source: A path or a seekable binary file object.
        rate: Output sample rate in Hz.
        mono: Downmix all channels to one by averaging.
        block_seconds: Source seconds per block.

    Returns:
        (info about the source, samples per channel at `rate`, iterator of (C, n) blocks).
        The blocks together hold exactly that many samples per channel.
    """
    info = probe(source)
    total = resampled_length(info.frames, info.sample_rate, rate)
    channels = 1 if mono else info.channels

    def blocks() -> Iterator[np.ndarray]:
        resample = _Resampler(info.sample_rate, rate, channels, total)
        with _open(source) as f:
            size, offset = max(1, int(block_seconds * info.sample_rate)), 0
            while True:
                try:
                    block = f.read(size, dtype="float32", always_2d=True).T  # (C, n)
                except (sf.LibsndfileError, RuntimeError) as exc:
                    raise AudioError(f"error while decoding audio: {exc}") from None
                check_finite(block, offset, info.sample_rate)
                offset += block.shape[1]
                if mono:
                    block = block.mean(axis=0, keepdims=True)
                last = block.shape[1] < size
                yield resample(block, last=last)
                if last:
                    return

    if hasattr(source, "seek"):
        source.seek(0)
    return info, total, blocks()


#: Output formats by file extension: (soundfile format, subtype, subtype with --float).
#: Those this machine's libsndfile cannot write are left out (see `output_format`).
_FORMATS = {
    ".wav": ("WAV", "PCM_16", "FLOAT"),
    ".flac": ("FLAC", "PCM_16", None),
    ".aiff": ("AIFF", "PCM_16", "FLOAT"),
    ".aif": ("AIFF", "PCM_16", "FLOAT"),
    ".ogg": ("OGG", "VORBIS", None),
    ".oga": ("OGG", "VORBIS", None),
    ".opus": ("OGG", "OPUS", None),
    ".mp3": ("MP3", "MPEG_LAYER_III", None),
}


def writable_extensions() -> list[str]:
    """The output extensions this machine can write, in the order of `_FORMATS`."""
    return [ext for ext, (fmt, sub, _) in _FORMATS.items() if sf.check_format(fmt, sub)]


def output_format(name: str, float32: bool = False) -> tuple[str, str]:
    """(format, subtype) to write an output named `name` in ('-': WAV on stdout).

    Raises OutputFormatError (a ValueError), in one line, for a name whose extension is not an audio format this
    machine writes, and for --float where the format holds no float samples.
    """
    ext = ".wav" if name == "-" else os.path.splitext(name)[1].lower()
    if ext not in writable_extensions():
        shown = ", ".join(writable_extensions())
        what = f"'{ext}' files" if ext else "a name without an extension"
        raise OutputFormatError(f"{name}: cannot write audio as {what}; name the output "
                         f"{shown} (or '-' for WAV on stdout)")
    fmt, subtype, float_subtype = _FORMATS[ext]
    if not float32:
        return fmt, subtype
    if float_subtype is None:
        raise OutputFormatError(f"{ext} files cannot hold float samples: drop --float or write .wav")
    return fmt, float_subtype


class _QuietIO:
    """A file object for soundfile's callbacks that keeps its OSError for later.

    soundfile calls the methods of a file object from C callbacks, where an exception is
    printed as a traceback and swallowed (a full disk gave five of them); here the first
    error is kept, the call reports failure to libsndfile, and the writer raises it.
    """

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self.error: OSError | None = None

    def _guard(self, call: Any, *args: Any, failed: Any) -> Any:
        if self.error is None:
            try:
                return call(*args)
            except OSError as exc:
                self.error = exc
        return failed

    def write(self, data: bytes) -> int:
        return self._guard(self._file.write, data, failed=0)

    def read(self, size: int) -> bytes:
        return self._guard(self._file.read, size, failed=b"")

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._guard(self._file.seek, offset, whence, failed=-1)

    def tell(self) -> int:
        return self._guard(self._file.tell, failed=-1)

    def check(self) -> None:
        if self.error is not None:
            raise self.error


class WavStreamWriter:
    """Writes WAV front to back, never seeking (stdout, pipes): 16-bit PCM or float.

    With `frames` known the header holds the exact sizes; otherwise 0xFFFFFFFF, which
    players read as "until the end of the stream" (`finish` corrects them on a file).
    Samples are clipped to full scale for 16 bits, and counted in `clipped`.
    """

    def __init__(self, fileobj: BinaryIO, sample_rate: int, channels: int,
                 float32: bool = False, frames: int | None = None) -> None:
        self._file, self._float, self.channels = fileobj, float32, channels
        width = 4 if float32 else 2
        size = UNKNOWN_SIZE if frames is None else frames * channels * width
        if size > UNKNOWN_SIZE - 36:  # more than a RIFF size holds: unknown
            size = UNKNOWN_SIZE
        fmt = struct.pack("<HHIIHH", 3 if float32 else 1, channels, sample_rate,
                          sample_rate * channels * width, channels * width, 8 * width)
        self._file.write(b"RIFF" + _U32.pack(min(UNKNOWN_SIZE, size + 36)) + b"WAVE" + b"fmt "
                         + _U32.pack(16) + fmt + b"data" + _U32.pack(size))
        self.clipped = 0
        self._bytes = 0

    def finish(self) -> None:
        """Write the real sizes into the header (a file, not a pipe: it must seek)."""
        end = self._file.tell()
        self._file.seek(end - self._bytes - 44 + 4)
        self._file.write(_U32.pack(36 + self._bytes))
        self._file.seek(end - self._bytes - 4)
        self._file.write(_U32.pack(self._bytes))
        self._file.seek(end)

    def write(self, block: np.ndarray) -> None:
        """Append (channels, n) float samples and flush."""
        if not block.shape[1]:
            return
        if self._float:
            data = block.T.astype("<f4").tobytes()
        else:
            samples, clipped = to_int16(block)
            self.clipped += clipped
            data = samples.T.astype("<i2").tobytes()
        self._file.write(data)
        self._file.flush()
        self._bytes += len(data)


#: The largest 16-bit sample as a float, 32767/32768: integer samples clip to [-1, INT16_PEAK].
INT16_PEAK = 1.0 - 1.0 / 32768


def clip_int16_range(block: np.ndarray) -> tuple[np.ndarray, int]:
    """`block` clipped to [-1, INT16_PEAK], and how many samples were clipped: the clip
    policy of every integer output (24 bits included), so that nothing wraps to -1."""
    clipped = int(np.count_nonzero((block > INT16_PEAK) | (block < -1.0)))
    return np.clip(block, -1.0, INT16_PEAK), clipped


def to_int16(block: np.ndarray) -> tuple[np.ndarray, int]:
    """16-bit samples of float ones (x 32768, rounded to nearest), and how many were
    clipped (see `clip_int16_range`).

    Files and streams both quantise here (libsndfile's own conversion differs between
    versions), so a WAV on stdout holds the samples of the same decode to a file.
    """
    block, clipped = clip_int16_range(block)
    return np.rint(block * 32768).astype(np.int16), clipped


UNKNOWN_SIZE = 0xFFFFFFFF  # the RIFF and data size of a WAV stream of open length
_U32 = struct.Struct("<I")


class AudioWriter:
    """Writes (C, n) float blocks at `rate_in` to a file at `rate_out`, exactly `frames` long.

    `format` and `subtype` are soundfile's. A file object that cannot seek (stdout on a
    pipe) is written as a WAV stream instead, front to back. Samples beyond [-1, 1) are
    clipped for integer formats, never wrapped; `clipped` counts them so the caller can
    report it.
    """

    def __init__(self, target: str | os.PathLike | BinaryIO, rate_in: int, rate_out: int,
                 channels: int, frames: int, subtype: str = "PCM_16",
                 format: str = "WAV") -> None:
        self._io: _QuietIO | None = None
        self._stream: WavStreamWriter | None = None
        if hasattr(target, "write") and not _seekable(target):
            if format != "WAV" or subtype not in ("PCM_16", "FLOAT"):
                raise OutputFormatError("only 16-bit or float WAV can be written to a stream")
            self._stream = WavStreamWriter(target, rate_out, channels, subtype == "FLOAT",
                                           frames)
        else:
            if hasattr(target, "write"):
                target = self._io = _QuietIO(target)
            try:
                self._file = sf.SoundFile(_native(target), "w", samplerate=rate_out, channels=channels,
                                          subtype=subtype, format=format)
            except sf.LibsndfileError as exc:
                self._check()
                raise AudioError(f"cannot write {format} ({subtype}) at {rate_out} Hz: "
                                 f"{exc.error_string.rstrip('.')}") from None
        self._resample = _Resampler(rate_in, rate_out, channels, frames)
        self._int16 = subtype == "PCM_16"
        self._integer = subtype.startswith("PCM")
        self.clipped = 0

    def write(self, block: np.ndarray, last: bool = False) -> None:
        """Append a (C, n) block; pass last=True with the final block (may be empty)."""
        out = self._resample(block, last=last)
        if self._stream is not None:
            self._stream.write(out)
            self.clipped = self._stream.clipped
            return
        if self._int16:
            out, clipped = to_int16(out)
            self.clipped += clipped
        elif self._integer:  # clipped as for 16 bits, so that nothing wraps
            out, clipped = clip_int16_range(out)
            self.clipped += clipped
        self._file.write(out.T)
        self._check()

    def _check(self) -> None:
        if self._io is not None:
            self._io.check()

    def close(self) -> None:
        if self._stream is None:
            self._file.close()
            self._check()

    def __enter__(self) -> "AudioWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _seekable(fileobj: Any) -> bool:
    try:
        return bool(fileobj.seekable())
    except (AttributeError, OSError, ValueError):
        return False
