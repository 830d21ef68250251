"""WAV streams read front to back (stdin, pipes): no seeking, a data size that may be unknown.

The reader takes PCM (8/16/24/32-bit) or float WAV whose data size may be unknown (0 or
0xFFFFFFFF, as `arecord` and `sox` write to pipes). Its writer twin, `audio.WavStreamWriter`,
lives with the other writers. No torch.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

import numpy as np

from .audio import UNKNOWN_SIZE as _UNKNOWN
from .audio import AudioError, check_source_rate
from .bitstream import TruncatedError


class WavStreamError(AudioError, ValueError):
    """Standard input is not a WAV stream this reader takes."""


def read_exactly(fileobj: BinaryIO, size: int, what: str) -> bytes:
    """`size` bytes of a stream that may deliver them in pieces; TruncatedError (naming
    `what`) if it ends first."""
    data = b""
    while len(data) < size:
        piece = fileobj.read(size - len(data))
        if not piece:
            raise TruncatedError(f"stream is truncated: {what} is incomplete")
        data += piece
    return data


class WavStreamReader:
    """Reads a WAV stream block by block without seeking (stdin, pipes).

    Attributes:
        sample_rate, channels: Of the stream.
    """

    def __init__(self, fileobj: BinaryIO) -> None:
        self._file = fileobj
        riff = read_exactly(fileobj, 12, "the WAV header")
        if riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
            raise WavStreamError("standard input is not a WAV stream (RIFF/WAVE header expected)")
        fmt = None
        while True:
            tag, size = struct.unpack("<4sI", read_exactly(fileobj, 8, "the WAV header"))
            if tag == b"data":
                break
            body = read_exactly(fileobj, size + (size & 1), "the WAV header")
            if tag == b"fmt ":
                fmt = body
        if fmt is None:
            raise WavStreamError("WAV stream without a format chunk")
        kind, self.channels, self.sample_rate = struct.unpack_from("<HHI", fmt)
        bits = struct.unpack_from("<H", fmt, 14)[0]
        if kind == 0xFFFE and len(fmt) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the real tag
            kind = struct.unpack_from("<H", fmt, 24)[0]
        self._dtype = {(1, 8): "u1", (1, 16): "<i2", (1, 24): "i3", (1, 32): "<i4",
                       (3, 32): "<f4", (3, 64): "<f8"}.get((kind, bits))
        if self._dtype is None or not self.channels:
            raise WavStreamError(f"unsupported WAV stream: format {kind}, {bits} bits")
        check_source_rate(self.sample_rate)
        self._width = bits // 8
        self._left = None if size in (0, _UNKNOWN) else size  # bytes of data, if known

    def read(self, frames: int) -> np.ndarray:
        """Up to `frames` frames as (channels, n) float32; fewer only at the end."""
        want = frames * self.channels * self._width
        if self._left is not None:
            want = min(want, self._left)
        data = b""
        while len(data) < want:
            piece = self._file.read(want - len(data))
            if not piece:
                break
            data += piece
        if self._left is not None:
            self._left -= len(data)
        usable = len(data) // (self.channels * self._width) * self.channels * self._width
        return self._convert(data[:usable]).reshape(-1, self.channels).T

    def _convert(self, data: bytes) -> np.ndarray:
        if self._dtype == "i3":  # 24-bit: widen to 32 bits, then scale
            raw = np.frombuffer(data, np.uint8).reshape(-1, 3)
            wide = np.zeros((raw.shape[0], 4), np.uint8)
            wide[:, 1:] = raw
            return wide.view("<i4").ravel().astype(np.float32) / 2.0**31
        x = np.frombuffer(data, self._dtype)
        if self._dtype == "u1":
            return (x.astype(np.float32) - 128) / 128
        if x.dtype.kind == "i":
            return x.astype(np.float32) / float(2 ** (8 * self._width - 1))
        return x.astype(np.float32)
