"""The user-facing codec: arrays <-> codes, and audio files <-> `.apc` files.

    >>> codec = Codec.load()                      # default weights, CUDA when present
    >>> codes = codec.encode(wav, sample_rate)    # (C, T) float -> (C, 4, N) int64
    >>> audio = codec.decode(codes)               # (C, N * 320) float at 48 kHz
    >>> codec.encode_file("in.flac", "out.apc")
    >>> codec.decode_file("out.apc", "out.wav")

A `Codec` runs its model through one engine (`engine/base.py`), picked when it is built:
the full model's chunked engine (`engine/chunked.py`, memory flat in the length) or the
streamable (causal) model's stream engine (`engine/stream.py`), whose files say so in their
header and carry one more code frame. This module turns arrays and files into what the
engine takes and back; it never asks which engine it has.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

import numpy as np
import soxr
import torch

from . import runtime
from .engine.base import CodeFrames, Engine, Runner
from .engine.chunked import ChunkedEngine, default_batch_size
from .engine.runners import LocalRunner
from .engine.stream import StreamEngine
from .errors import ApcodecError
from .format import bitstream, damaged, levels
from .format.atomic import atomic_write
from .format.audio import AudioWriter, check_finite, read_blocks, resampled_length
from .format.bitstream import ApcReader, ApcWriter, Header
from .format.entropy import CodeTables
from .models import releases, weights
from .models.limits import check_decodable

Progress = Callable[[float], None]  # called with seconds of audio just processed
Target = str | os.PathLike | BinaryIO


class TimeRangeError(ApcodecError, ValueError):
    """A time range that is negative, not finite, or starts past the end of the file."""


@dataclasses.dataclass(frozen=True)
class DecodeResult:
    """What `decode_file` wrote: rate, channels, samples per channel, clipped samples."""

    sample_rate: int
    channels: int
    frames: int
    clipped: int
    damaged: tuple[str, ...] = ()  # with skip_damaged: the chunks written as silence


class Codec:
    """A loaded model and the engine that codes whole signals and files with it.

    Args:
        loaded: Weights from `weights.load`.
        chunk_frames: Code frames per chunk (written into each file's header).
        context_frames: Frames of context each side of a chunk (the chunked engine).
        batch_size: Chunks per forward pass (default: `chunked.default_batch_size`).
        bf16: Run the full model's passes under bf16 autocast (`Codec.load` decides it from
            the precision asked for and the machine; streams always run in float32).
        runner: Where the full model's forward passes run (default: a `LocalRunner`, in
            this process's threads, with `bf16`); `engine/shared.py`'s `SharedPasses`
            shares them between files (see `with_runner`). The stream engine of a
            streamable model runs in the calling thread and takes none.

    Attributes:
        engine: The `base.Engine` that every encode and decode goes through: the chunked
            engine of the full model or the stream engine of the streamable one.
    """

    def __init__(self, loaded: weights.LoadedWeights, chunk_frames: int = 150,
                 context_frames: int = 16, batch_size: int | None = None,
                 bf16: bool = False, runner: Runner | None = None) -> None:
        self.weights = loaded
        self.model = loaded.model
        self.config = loaded.model.config
        self.chunk_frames = chunk_frames
        self.context_frames = context_frames
        self.batch_size = batch_size or default_batch_size(loaded.model)
        self.bf16 = bf16 and not self.config.causal
        self.engine: Engine
        if self.config.causal:
            self.engine = StreamEngine(self.model)
        else:
            self.engine = ChunkedEngine(self.model, runner or LocalRunner(self.model, self.bf16),
                                        chunk_frames, context_frames, self.batch_size)

    def with_runner(self, runner: Runner) -> "Codec":
        """A codec of the same weights and settings whose forward passes `runner` runs."""
        return Codec(self.weights, self.chunk_frames, self.context_frames, self.batch_size,
                     self.bf16, runner)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, device: str = "auto",
             streamable: bool = False, precision: str | None = None,
             tables: str | os.PathLike | None = None, **kwargs: int) -> "Codec":
        """Load weights from `path` (default: the newest installed release, of the
        streamable model with `streamable`) onto `device`; `precision` auto, fp32 or bf16
        (default: $APCODEC_PRECISION, else auto: see `runtime.resolve_precision`).

        `tables`: a code-tables file to code with. Without it, the tables in `path`, or,
        when it holds none and is an installed release's network, that release's newest
        tables (`releases.py`).
        """
        path = weights.default_path(streamable) if path is None else path
        target = runtime.resolve_device(device)
        bf16 = runtime.resolve_precision(precision, target)
        if target.type == "cuda":
            no_tf32()
        if tables is None:
            tables = releases.newest_tables_of(Path(path))
        return cls(weights.load(path, target, tables), bf16=bf16, **kwargs)

    @classmethod
    def for_header(cls, header: Header, device: str = "auto", precision: str | None = None,
                 **kwargs: int) -> "Codec":
        """The installed weights that made the codes of `header` (`releases.require`).

        Raises:
            NotInstalledError: None of the installed releases or user folders has them.
        """
        match = releases.require(header)
        return cls.load(match.path, device, precision=precision, tables=match.tables,
                        **kwargs)

    # ---- arrays ---------------------------------------------------------------------------

    def encode(self, wav: np.ndarray, sample_rate: int | None = None) -> np.ndarray:
        """Codes of a signal.

        Args:
            wav: (C, T) or (T,) float audio.
            sample_rate: Rate of `wav` in Hz (default: the codec's rate); resampled if needed.

        Returns:
            (C, n_codebooks, ceil(T' / samples_per_frame)) int64 codes, T' the length at the
            codec's rate. Identical to the codes `encode_file` writes for the same audio.

        Raises:
            AudioError: `wav` holds NaN or infinity.
        """
        wav = np.atleast_2d(np.asarray(wav, dtype=np.float32))
        rate = self.config.sample_rate
        check_finite(wav, 0, sample_rate or rate)
        if sample_rate not in (None, rate):
            wav = soxr.resample(wav.T, sample_rate, rate, quality="VHQ").T
        return _concat(self.engine.encode([wav], wav.shape[1], wav.shape[0]),
                       (wav.shape[0], self.config.n_codebooks, 0), np.int64)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(C, n_codebooks, N) codes -> (C, N * samples_per_frame) float32 audio."""
        codes = np.asarray(codes, dtype=np.int64)
        frames = CodeFrames(lambda a, b: codes[..., a:b], codes.shape[-1], self.chunk_frames)
        return _concat(self.engine.decode(frames), (codes.shape[0], 0), np.float32)

    # ---- files ----------------------------------------------------------------------------

    @property
    def level_frames(self) -> int:
        """Code frames per level segment of the files this codec writes: about
        `levels.SEGMENT_SECONDS`, and a divisor of the chunk."""
        wanted = max(1, round(levels.SEGMENT_SECONDS * self.config.sample_rate
                              / self.config.samples_per_frame))
        return math.gcd(wanted, self.chunk_frames)

    def file_header(self, channels: int, source_sample_rate: int, source_length: int,
                    coded_length: int, packet: int | None = None) -> Header:
        """The header of the file these weights make of such audio: format version 3,
        range-coded where the weights hold code tables (else every chunk bit-packed and
        both fingerprints the network's), with level gains (`levels.py`).

        With `packet`, the header of a live stream (`live.py`) in records of `packet`
        frames: version 1, lengths 0 (they follow in the stream), always bit-packed, and
        naming the network alone, since records use no code tables.
        """
        live = packet is not None
        return Header(
            sample_rate=self.config.sample_rate,
            samples_per_frame=self.config.samples_per_frame,
            n_codebooks=self.config.n_codebooks,
            bits_per_code=self.config.bits_per_code,
            chunk_frames=packet if live else self.chunk_frames,
            channels=channels,
            source_sample_rate=source_sample_rate,
            source_length=source_length,
            coded_length=coded_length,
            fingerprint=self.weights.network_fingerprint if live else self.weights.fingerprint,
            model_name=self.config.name,
            streamable=self.config.causal,
            live=live,
            version=bitstream.VERSION if live else bitstream.VERSION_LEVELS,
            network_fingerprint=None if live else self.weights.network_fingerprint,
            level_frames=0 if live else self.level_frames,
        )

    def encode_file(self, source: str | BinaryIO, target: Target, mono: bool = False,
                    progress: Progress | None = None) -> Header:
        """Encode an audio file (any format soundfile reads) into a `.apc` file.

        The level gains (`levels.py`) come from analysis by synthesis: the codes are
        decoded as they are made, a chunk behind the encoder, and each chunk is written
        once the next one is decoded too (its last gain leans on the next chunk's first),
        so the file leaves as it is made; the codes stay in memory until the end (72 kB a
        minute of audio and channel), the audio does not. `progress` hears each second
        twice, at half weight: once encoded, once decoded.
        """
        info, total, blocks = read_blocks(source, self.config.sample_rate, mono=mono)
        header = self.file_header(1 if mono else info.channels, info.sample_rate,
                                  info.frames, total)
        meter = levels.LevelMeter(header.channels, header.level_samples,
                                  header.n_level_segments)
        coder = _Pipeline(self.engine.encode(meter.source(blocks), total, header.channels),
                          header, progress)
        per_chunk = header.chunk_frames // header.level_frames
        with _binary(target, "wb") as f:
            writer = ApcWriter(f, header, self.weights.code_tables)
            written = decoded = 0  # chunks written; samples decoded
            for block in self.engine.decode(coder.frames(), 0, total):
                meter.decoded(block)
                decoded += block.shape[1]
                if progress:
                    progress(block.shape[1] / header.sample_rate / 2)
                # Chunk c is written once chunk c + 1 is decoded as well.
                while written + 1 < header.n_chunks and decoded >= min(
                        total, (written + 2) * header.chunk_frames * header.samples_per_frame):
                    writer.write(*coder.chunk(written, meter.solve(
                        (written + 2) * per_chunk, coder.gains)))
                    written += 1
            coder.finish()
            for index in range(written, header.n_chunks):
                writer.write(*coder.chunk(index, meter.solve(fixed=coder.gains)))
            writer.close()
        return header

    def check_compatible(self, header: Header) -> None:
        """Raise WeightsMismatchError unless these weights made the codes in `header`
        (HeaderError first if it claims what this model cannot decode: `limits.py`).

        A version 1 file needs the same network (its payload does not depend on code
        tables, so files made before the tables were added still decode, and so do those
        whose header names this network with any of its released tables). A version 2 or 3
        file needs the same network and tables (one written without tables, the network
        alone): CodeTablesMismatchError when only the tables differ (or are missing).
        """
        check_decodable(header, self.config)
        w = self.weights
        if header.fingerprint == w.fingerprint or (
                not header.coded and header.fingerprint == w.network_fingerprint):
            return
        if not header.coded and releases.network_of(header.fingerprint) == \
                w.network_fingerprint:  # this network with tables of its release: still it
            return
        if header.coded and header.network_fingerprint == w.network_fingerprint:
            if not header.needs_tables:  # written without tables: every chunk bit-packed
                return
            bitstream.check_tables(header, w.code_tables)  # raises: the tables differ
        raise bitstream.WeightsMismatchError(
            f"the file was made by other weights (model {header.model_name!r}, fingerprint "
            f"{header.fingerprint.hex()}) than those loaded ({self.config.name!r}, "
            f"{w.fingerprint.hex()}); pass the matching --weights"
        )

    def matches(self, header: Header) -> bool:
        """Whether these weights decode the codes in `header` (`check_compatible` passes)."""
        try:
            self.check_compatible(header)
        except bitstream.WeightsMismatchError:
            return False
        return True

    def decode_file(self, source: str | BinaryIO, target: Target, original_rate: bool = False,
                    start: float = 0.0, duration: float | None = None, subtype: str = "PCM_16",
                    format: str = "WAV", progress: Progress | None = None,
                    skip_damaged: bool = False) -> DecodeResult:
        """Decode a `.apc` file (or the time range [start, start + duration) s) to audio.

        `format` and `subtype` are soundfile's (WAV/FLAC; PCM_16, PCM_24, FLOAT).
        Only the chunks that the range needs (plus one each side for context) are read,
        and their checksums are checked before anything is decoded: a damaged chunk
        raises ChecksumError at once, or with `skip_damaged` is written as silence (and
        named in the result's `damaged`). The output is exactly as long as the source
        (or the range), at 48 kHz or, with `original_rate`, at the source's rate. A
        version 3 file's level gains are applied (`levels.apply`).
        """
        with _binary(source, "rb") as f:
            self.check_compatible(bitstream.peek_header(f))
            read_frames, header, reader = _frame_reader(f, self.weights.code_tables)
            check_decodable(header, self.config)  # a live stream's lengths, now known
            first, count = _sample_range(header, start, duration)
            bad: list[bitstream.ChecksumError] = []
            if reader is not None:
                bad = damaged.find_damaged(reader, damaged.chunks_read(header, first, count))
                if not skip_damaged:
                    damaged.refuse(bad)
                read_frames = damaged.skipping(reader, {e.chunk for e in bad})
            rate = header.source_sample_rate if original_rate else header.sample_rate
            if original_rate and first == 0 and count == header.coded_length:
                frames = header.source_length
            else:
                frames = resampled_length(count, header.sample_rate, rate)
            audio = self.engine.decode(
                CodeFrames(read_frames, header.n_frames, header.chunk_frames), first, count)
            if header.has_levels and reader is not None:
                gains = reader.levels(damaged.chunks_read(header, first, count),
                                      {e.chunk for e in bad})
                audio = levels.apply(audio, first, gains, header.level_samples)
            audio = damaged.silenced(audio, first,
                                     damaged.damaged_spans(reader, bad) if bad else [])
            with _binary(target, "wb") as out, AudioWriter(
                    out, header.sample_rate, rate, header.channels, frames, subtype,
                    format) as writer:
                for block in audio:
                    writer.write(block)
                    if progress:
                        progress(block.shape[1] / header.sample_rate)
                writer.write(np.zeros((header.channels, 0), np.float32), last=True)
        return DecodeResult(rate, header.channels, frames, writer.clipped,
                            tuple(bitstream.chunk_label(header, e.chunk) for e in bad))


class _Pipeline:
    """The encoder side of `Codec.encode_file`: codes made on demand, as the decode of
    the same codes reads them, and handed to the writer chunk by chunk with their gains.

    Args:
        encoded: The engine's code arrays, in order.
        header: The file's header.
        progress: Told of each array's seconds at half weight.
    """

    def __init__(self, encoded: Iterator[np.ndarray], header: Header,
                 progress: Progress | None) -> None:
        self._encoded = encoded
        self._header = header
        self._progress = progress
        dtype = np.int16 if header.bits_per_code < 16 else np.int32  # 2 bytes a code
        self._codes = np.zeros((header.channels, header.n_codebooks, header.n_frames), dtype)
        self._have = 0
        self._coded = 0  # samples coded so far, for progress (the last frame is padded)
        self.gains = np.zeros((header.channels, 0), np.int8)  # those written

    def _read(self, a: int, b: int) -> np.ndarray:
        h = self._header
        while self._have < b:
            codes = next(self._encoded)
            self._codes[..., self._have:self._have + codes.shape[-1]] = codes
            self._have += codes.shape[-1]
            if self._progress:
                step = min(h.coded_length - self._coded, codes.shape[-1] * h.samples_per_frame)
                self._progress(step / h.sample_rate / 2)
                self._coded += step
        return self._codes[..., a:b].astype(np.int64)

    def frames(self) -> CodeFrames:
        """The codes as the engine's decode reads them."""
        return CodeFrames(self._read, self._header.n_frames, self._header.chunk_frames)

    def finish(self) -> None:
        """Encode whatever the decode did not ask for (the end of the signal)."""
        self._read(0, self._header.n_frames)
        for _ in self._encoded:  # the engine's generator ends cleanly
            raise ApcodecError("the encoder made more code frames than the header announces")

    def chunk(self, index: int, solved: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(codes, gains) of chunk `index` for the writer, from `solved`, the gains of the
        segments after those written, chunk `index`'s first."""
        start, stop = self._header.chunk_frame_range(index)
        first, last = self._header.chunk_level_range(index)
        gains = solved[:, :last - first]
        self.gains = np.concatenate([self.gains, gains], axis=1)
        return self._codes[..., start:stop].astype(np.int64), gains


def no_tf32() -> None:
    """Make CUDA compute float32 convolutions and matrix products in float32 (this process).

    cuDNN runs float32 convolutions in TF32 (a 10-bit mantissa) unless told otherwise:
    measured on an H200 (2026-12-04), the shipped model's audio decoded on CUDA then
    differed from the CPU's by 38 dB SNR, where the streamable model, whose decoder runs
    no cuDNN convolution, differed by 133 dB. Inference asks for float32 (or for bf16,
    `--precision`), so `Codec.load` turns TF32 off; `apcodec train` turns it back on for
    its own run (train/loop.py). What still differs between devices: docs/gpu.md.
    """
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def _frame_reader(f: BinaryIO, tables: CodeTables | None
                  ) -> tuple[Callable[[int, int], np.ndarray], Header, ApcReader | None]:
    """`read_frames(start, stop)` of a seekable `.apc` file, its header with lengths, and
    its reader (None for a live stream, which `format/live.py` reads whole first: it has no
    random access). `tables` decode a range-coded (version 2 or 3) file."""
    header = bitstream.peek_header(f)
    if not header.live:
        reader = ApcReader(f, tables if header.needs_tables else None)
        return reader.read_frames, reader.header, reader
    from .format.live import LiveReader

    header, codes = LiveReader(f).read_all()
    return (lambda a, b: codes[..., a:b]), header, None


def _sample_range(header: Header, start: float, duration: float | None) -> tuple[int, int]:
    """First sample and sample count at the codec rate of a time range, clipped to the file."""
    if not (math.isfinite(start) and start >= 0) or (
            duration is not None and not (math.isfinite(duration) and duration >= 0)):
        raise TimeRangeError("start and duration must be finite and not negative")
    first = min(header.coded_length, round(start * header.sample_rate))
    if start > 0 and first >= header.coded_length:
        raise TimeRangeError(f"start {start:g} s is at or past the end ({header.duration:.3f} s)")
    last = header.coded_length if duration is None else \
        min(header.coded_length, first + round(duration * header.sample_rate))
    return first, last - first


def _concat(parts: Iterable[np.ndarray], empty: tuple[int, ...], dtype: type) -> np.ndarray:
    parts = list(parts)
    return np.concatenate(parts, axis=-1).astype(dtype) if parts else np.zeros(empty, dtype)


@contextlib.contextmanager
def _binary(target: Target, mode: str) -> Iterator[BinaryIO]:
    """Open a path (for writing: atomically, so that a failure leaves no partial file and
    the old one as it was), or pass an already open binary file object through unclosed."""
    if hasattr(target, "read" if "r" in mode else "write"):
        yield target
    elif "w" in mode:
        with atomic_write(target) as f:
            yield f
    else:
        with open(target, mode) as f:
            yield f
