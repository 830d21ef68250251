"""Audio in and out: reading any soundfile format in blocks, resampling, writing WAV.

No torch here. Audio arrays are float32 (channels, samples). Resampling uses soxr's
streaming resampler, so a file of any length passes through in bounded memory, and its
length after resampling is fixed by `resampled_length` (round half up, what soxr gives).
"""

from __future__ import annotations

import dataclasses
from typing import BinaryIO, Iterator

import numpy as np
import soundfile as sf
import soxr

#: Seconds of audio read from disk at a time.
BLOCK_SECONDS = 5.0


class AudioError(Exception):
    """An input file that cannot be read as audio, or an output that cannot be written."""


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What a source file holds: rate in Hz, channel count, samples per channel."""

    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def resampled_length(frames: int, rate_in: int, rate_out: int) -> int:
    """Samples after resampling `frames` samples, rounding half up."""
    return (2 * frames * rate_out + rate_in) // (2 * rate_in)


def _open(source: str | BinaryIO) -> sf.SoundFile:
    try:
        return sf.SoundFile(source)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        detail = getattr(exc, "error_string", None) or str(exc).splitlines()[0]
        raise AudioError(f"cannot read as audio: {detail.rstrip('.')}") from None


def probe(source: str | BinaryIO) -> AudioInfo:
    """Rate, channels and length of an audio file without reading its samples."""
    with _open(source) as f:
        return AudioInfo(f.samplerate, f.channels, f.frames)


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
            size = max(1, int(block_seconds * info.sample_rate))
            while True:
                try:
                    block = f.read(size, dtype="float32", always_2d=True).T  # (C, n)
                except (sf.LibsndfileError, RuntimeError) as exc:
                    raise AudioError(f"error while decoding audio: {exc}") from None
                if mono:
                    block = block.mean(axis=0, keepdims=True)
                last = block.shape[1] < size
                yield resample(block, last=last)
                if last:
                    return

    if hasattr(source, "seek"):
        source.seek(0)
    return info, total, blocks()


class AudioWriter:
    """Writes (C, n) float blocks at `rate_in` to a file at `rate_out`, exactly `frames` long.

    Samples beyond [-1, 1) are clipped for integer formats, never wrapped; `clipped`
    counts them so the caller can report it.
    """

    def __init__(self, target: str | BinaryIO, rate_in: int, rate_out: int, channels: int,
                 frames: int, subtype: str = "PCM_16", format: str = "WAV") -> None:
        self._file = sf.SoundFile(target, "w", samplerate=rate_out, channels=channels,
                                  subtype=subtype, format=format)
        self._resample = _Resampler(rate_in, rate_out, channels, frames)
        self._integer = subtype.startswith("PCM")
        self.clipped = 0

    def write(self, block: np.ndarray, last: bool = False) -> None:
        """Append a (C, n) block; pass last=True with the final block (may be empty)."""
        out = self._resample(block, last=last)
        if self._integer:
            # The largest int16 is 32767/32768: clip there so nothing wraps to -1.
            peak = 1.0 - 1.0 / 32768
            self.clipped += int(np.count_nonzero((out > peak) | (out < -1.0)))
            out = np.clip(out, -1.0, peak)
        self._file.write(out.T)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "AudioWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
