"""Real-time pipes: live `.apc` streams and WAV streams, encoded and decoded as they flow.

    arecord -f S16_LE -r 48000 | apcodec encode --streaming - - | apcodec decode --streaming - - | aplay

A file needs its length in its header before its payload; a live stream does not know it.
A live stream (flag bit 1 of the header, see `bitstream.py`) therefore has lengths 0 in its
header (and the network fingerprint as its weights fingerprint: records use no code
tables; docs/format.md, "The contract"), and its payload is a sequence of records, each written and flushed as soon as its
frames are coded:

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

WAV on pipes: `wavstream.WavStreamReader` reads PCM (8/16/24/32-bit) or float WAV whose
data size may be unknown (0 or 0xFFFFFFFF, as `arecord` and `sox` write to pipes);
`audio.WavStreamWriter` writes 0xFFFFFFFF sizes, which players read as "until the end of
the stream".
"""

from __future__ import annotations

import dataclasses
import io
import struct
from typing import BinaryIO, Callable, Iterator

import numpy as np
import soxr
import torch

from ..engine.stream import StreamDecoder, StreamEncoder, StreamEngine
from ..units import ceil_div
from . import bitstream
from .audio import WavStreamWriter, check_finite
from .bitstream import ApcError, ChecksumError, Header, TrailingDataError, TruncatedError
from .entropy import CodeTables
from .wavstream import WavStreamReader, read_exactly as _read_exactly

_COUNT = struct.Struct("<H")
_END = struct.Struct("<HQQ")
_U32 = struct.Struct("<I")
Progress = Callable[[float], None]


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

    Raises (while iterating): TruncatedError, ChecksumError, TrailingDataError, ApcError.
    """

    def __init__(self, fileobj: BinaryIO, header: Header | None = None) -> None:
        self.header = bitstream.read_header(fileobj) if header is None else header
        if not self.header.live:
            raise ApcError("not a live stream")
        self._file = fileobj
        self.file_header: Header | None = None

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
            self._check_crc(index, body, what)
            frames += count
            if need is not None and frames > need:
                raise ApcError(f"the stream holds more than the {need} frames its lengths need")
            yield bitstream.unpack_frames(h, body[2:-4], count, what, index)
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


# ---- real-time coding ------------------------------------------------------------------------


def encode(model: torch.nn.Module, header: Header, blocks: Iterator[np.ndarray], sink: BinaryIO,
           rate: int, progress: Progress | None = None) -> tuple[int, int]:
    """Encode (C, n) float32 blocks at `rate` Hz into a live stream on `sink`.

    Each block is resampled to the codec's rate, coded and its full records written at once.

    Returns:
        (source samples, coded samples) per channel.
    """
    StreamEngine(model).check_channels(header.channels)
    codec_rate = header.sample_rate
    resampler = None if rate == codec_rate else soxr.ResampleStream(
        rate, codec_rate, header.channels, dtype="float32", quality="VHQ")
    encoder, writer = StreamEncoder(model), LiveWriter(sink, header)
    source = coded = 0

    def code(samples: np.ndarray) -> None:
        nonlocal coded
        coded += samples.shape[1]
        writer.write(encoder.push(torch.from_numpy(np.ascontiguousarray(samples))).numpy())
        if progress:
            progress(samples.shape[1] / codec_rate)

    for block in blocks:
        source += block.shape[1]
        code(block if resampler is None else
             resampler.resample_chunk(np.ascontiguousarray(block.T)).T)
    if resampler is not None:
        code(resampler.resample_chunk(np.zeros((0, header.channels), np.float32), last=True).T)
    writer.end(source, coded)  # before the last frames: the decoder then stops exactly
    if coded:
        writer.write(encoder.finish(header.channels).numpy())
    writer.close()
    return source, coded


def decode(model: torch.nn.Module, header: Header, source: BinaryIO, sink: WavStreamWriter,
           progress: Progress | None = None, tables: CodeTables | None = None) -> int:
    """Decode a `.apc` stream (live, or a file read front to back) from `source` (positioned
    after the header) to `sink`, writing samples as soon as they are final.

    The output is trimmed to the exact length: a file's from its header, a live stream's
    from its lengths record (which comes before the frames that reach the end; a stream
    from before that order may have had up to 360 samples, 7.5 ms, written past its end).
    A range-coded (version 2) file, decoded with `tables`, is read whole first: its chunk
    index is at its end.

    Returns:
        Samples written per channel.
    """
    StreamEngine(model).check_channels(header.channels)
    if header.live:
        reader = LiveReader(source, header)
        records: Iterator[np.ndarray] = iter(reader)
        limit = None
    else:
        records = _chunks(header, source, tables)
        limit = header.coded_length
    decoder, written = StreamDecoder(model), 0

    def emit(audio: np.ndarray) -> None:
        nonlocal written
        if limit is not None:
            audio = audio[:, :max(0, limit - written)]
        sink.write(audio)
        written += audio.shape[1]
        if progress:
            progress(audio.shape[1] / header.sample_rate)

    for codes in records:
        if limit is None and reader.file_header is not None:
            limit = reader.file_header.coded_length
        emit(decoder.push(torch.from_numpy(codes)).numpy())
    if limit is None:
        limit = reader.file_header.coded_length
    emit(decoder.flush().numpy())
    return written


def _chunks(header: Header, source: BinaryIO, tables: CodeTables | None
            ) -> Iterator[np.ndarray]:
    if header.coded:
        yield from bitstream.ApcReader(io.BytesIO(header.to_bytes() + source.read()), tables)
        return
    for index in range(header.n_chunks):
        size = header.chunk_size(index)
        data = source.read(size)
        yield bitstream.decode_chunk(header, index, data)
    if source.read(1):
        raise TrailingDataError("unexpected bytes after the last chunk")


# ---- the command line's pipes ----------------------------------------------------------------


def encode_pipe(codec, source: str, target: str, mono: bool, packet: int,
                progress: Progress | None = None) -> None:
    """`apcodec encode --streaming` with '-' as `source` (a WAV stream) or `target`."""
    import sys

    from .atomic import atomic_write
    from .audio import probe, read_blocks

    if source == "-":
        wav = WavStreamReader(sys.stdin.buffer)
        rate, channels = wav.sample_rate, wav.channels
        # About one code frame of input at a time: codes leave as soon as they exist.
        step = ceil_div(codec.config.samples_per_frame * rate, codec.config.sample_rate)
        blocks: Iterator[np.ndarray] = _wav_blocks(wav, step)
    else:
        info = probe(source)
        rate, channels = info.sample_rate, info.channels
        blocks = read_blocks(source, rate, block_seconds=0.1)[2]
    if mono:
        blocks = (b.mean(axis=0, keepdims=True) for b in blocks)
        channels = 1
    c = codec.config
    header = Header(sample_rate=c.sample_rate, samples_per_frame=c.samples_per_frame,
                    n_codebooks=c.n_codebooks, bits_per_code=c.bits_per_code,
                    chunk_frames=packet, channels=channels, source_sample_rate=rate,
                    source_length=0, coded_length=0,
                    fingerprint=codec.weights.network_fingerprint,  # records use no tables
                    model_name=c.name, streamable=True, live=True)
    if target == "-":
        encode(codec.model, header, blocks, sys.stdout.buffer, rate, progress)
        return
    with atomic_write(target) as f:
        encode(codec.model, header, blocks, f, rate, progress)


def decode_pipe(codec_for: Callable[[Header], object], source: str, target: str,
                float32: bool, progress: Progress | None = None) -> None:
    """`apcodec decode --streaming` with '-' as `source` or `target`: audio is written as
    the codes arrive. `codec_for(header)` gives the codec that decodes the stream."""
    import sys

    from .atomic import atomic_write

    def run(src: BinaryIO) -> None:
        header = bitstream.read_header(src)
        if not header.streamable:
            raise ApcError("the codes were not made by the streamable model: "
                           "decode without --streaming")
        codec = codec_for(header)
        codec.check_compatible(header)
        if target == "-":
            sink = WavStreamWriter(sys.stdout.buffer, header.sample_rate, header.channels,
                                   float32)
            decode(codec.model, header, src, sink, progress, codec.weights.code_tables)
            return
        with atomic_write(target) as f:
            sink = WavStreamWriter(f, header.sample_rate, header.channels, float32)
            decode(codec.model, header, src, sink, progress, codec.weights.code_tables)
            sink.finish()

    if source == "-":
        run(sys.stdin.buffer)
    else:
        with open(source, "rb") as f:
            run(f)


def _wav_blocks(wav: WavStreamReader, frames: int) -> Iterator[np.ndarray]:
    offset = 0
    while (block := wav.read(frames)).shape[1]:
        check_finite(block, offset, wav.sample_rate)
        offset += block.shape[1]
        yield block
