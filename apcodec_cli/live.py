"""Real-time pipes: the streamable model coding audio into live `.apc` streams as it
flows, and decoding streams (live, or files read front to back) as the codes come in.

    arecord -f S16_LE -r 48000 | apcodec encode --streaming - - | apcodec decode --streaming - - | aplay

The codec layer beside `codec.py`: a stream's header comes from `Codec.file_header` and a
decoder's weights pass `Codec.check_compatible`, as a file's do. Codes go through the
stream engine's incremental sessions (`engine/stream.StreamEncoder`, `StreamDecoder`),
which only the streamable model has. The record format itself is `format/live.py`.

WAV on pipes: `format/wavstream.WavStreamReader` reads PCM (8/16/24/32-bit) or float WAV
whose data size may be unknown (0 or 0xFFFFFFFF, as `arecord` and `sox` write to pipes);
`format/audio.WavStreamWriter` writes 0xFFFFFFFF sizes, which players read as "until the
end of the stream".
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterator

import numpy as np
import soxr
import torch

from .engine.stream import StreamDecoder, StreamEncoder, StreamEngine
from .format import bitstream, levels
from .format.audio import WavStreamWriter, check_finite
from .format.bitstream import ApcError, ChecksumError, Header, TrailingDataError
from .format.damaged import find_damaged, silenced
from .format.entropy import CodeTables
from .format.live import LiveReader, LiveWriter
from .format.wavstream import WavStreamReader
from .units import ceil_div

if TYPE_CHECKING:
    from .codec import Codec

Progress = Callable[[float], None]


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
           progress: Progress | None = None, tables: CodeTables | None = None,
           on_damaged: Callable[[str], None] | None = None) -> int:
    """Decode a `.apc` stream (live, or a file read front to back) from `source` (positioned
    after the header) to `sink`, writing samples as soon as they are final.

    The output is trimmed to the exact length: a file's from its header, a live stream's
    from its lengths record (which comes before the frames that reach the end; a stream
    from before that order may have had up to 360 samples, 7.5 ms, written past its end).
    A version 2 or 3 file (range-coded with `tables`) is read whole first: its chunk
    index is at its end; a version 3 file's level gains are applied (`levels.py`).

    A damaged record (or chunk) raises ChecksumError; with `on_damaged`, its frames are
    decoded as code 0, its samples are written as silence, and `on_damaged(label)` is
    called as it arrives.

    Returns:
        Samples written per channel.
    """
    StreamEngine(model).check_channels(header.channels)
    skip = on_damaged is not None
    gains = None
    if header.live:
        reader = LiveReader(source, header, skip_damaged=skip)
        records: Iterator[np.ndarray] = iter(reader)
        damaged = reader.damaged
        limit = None
    else:
        damaged = []
        indexed = bitstream.ApcReader(io.BytesIO(header.to_bytes() + source.read()),
                                      tables if header.needs_tables else None) \
            if header.coded else None
        if header.has_levels:
            gains = indexed.levels(skip={e.chunk for e in find_damaged(
                indexed, range(header.n_chunks))})
        records = _chunks(header, source, indexed, damaged if skip else None)
        limit = header.coded_length
    decoder, written, told = StreamDecoder(model), 0, 0
    spans: list[tuple[int, int]] = []  # damaged samples [start, stop)
    per_frame = header.samples_per_frame

    def emit(audio: np.ndarray) -> None:
        nonlocal written
        if limit is not None:
            audio = audio[:, :max(0, limit - written)]
        if gains is not None:
            audio = next(levels.apply([audio], written, gains, header.level_samples))
        if spans:
            audio = next(silenced([audio], written, spans))
        sink.write(audio)
        written += audio.shape[1]
        if progress:
            progress(audio.shape[1] / header.sample_rate)

    for codes in records:
        if limit is None and reader.file_header is not None:
            limit = reader.file_header.coded_length
        for label, first, end in damaged[told:]:  # empty unless on_damaged is given
            spans.append((first * per_frame, end * per_frame))
            if on_damaged is not None:
                on_damaged(label)
        told = len(damaged)
        emit(decoder.push(torch.from_numpy(codes)).numpy())
    if limit is None:
        limit = reader.file_header.coded_length
    emit(decoder.flush().numpy())
    return written


def _chunks(header: Header, source: BinaryIO, reader: bitstream.ApcReader | None,
            damaged: list[tuple[str, int, int]] | None = None) -> Iterator[np.ndarray]:
    """The codes of a file read front to back, chunk by chunk (`reader`: a version 2 or 3
    file's, already read whole); with `damaged`, a damaged chunk is read as code 0 and
    appended there as (label, first frame, end frame)."""
    for index in range(header.n_chunks):
        start, stop = header.chunk_frame_range(index)
        try:
            if reader is not None:
                reader.check_chunk(index)
                yield reader.read_frames(start, stop)
                continue
            data = source.read(header.chunk_size(index))
            codes = bitstream.decode_chunk(header, index, data)
        except ChecksumError:
            if damaged is None:
                raise
            damaged.append((bitstream.chunk_label(header, index), start, stop))
            codes = np.zeros((header.channels, header.n_codebooks, stop - start), np.int64)
        yield codes
    if reader is None and source.read(1):
        raise TrailingDataError("unexpected bytes after the last chunk")


# ---- the command line's pipes ----------------------------------------------------------------


def encode_pipe(codec: "Codec", source: str, target: str, mono: bool, packet: int,
                progress: Progress | None = None) -> None:
    """`apcodec encode --streaming` with '-' as `source` (a WAV stream) or `target`."""
    import sys

    from .format.atomic import atomic_write
    from .format.audio import probe, read_blocks

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
    header = codec.file_header(channels, rate, 0, 0, packet=packet)
    if target == "-":
        encode(codec.model, header, blocks, sys.stdout.buffer, rate, progress)
        return
    with atomic_write(target) as f:
        encode(codec.model, header, blocks, f, rate, progress)


def decode_pipe(codec_for: Callable[[Header], "Codec"], source: str, target: str,
                float32: bool, progress: Progress | None = None,
                on_damaged: Callable[[str], None] | None = None) -> None:
    """`apcodec decode --streaming` with '-' as `source` or `target`: audio is written as
    the codes arrive. `codec_for(header)` gives the codec that decodes the stream;
    `on_damaged` as for `decode` (--skip-damaged)."""
    import sys

    from .format.atomic import atomic_write

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
            decode(codec.model, header, src, sink, progress, codec.weights.code_tables,
                   on_damaged)
            return
        with atomic_write(target) as f:
            sink = WavStreamWriter(f, header.sample_rate, header.channels, float32)
            decode(codec.model, header, src, sink, progress, codec.weights.code_tables,
                   on_damaged)
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
