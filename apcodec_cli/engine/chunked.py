"""Chunked encoding and decoding of signals of any length in bounded memory.

The signal is cut into chunks of `chunk_frames` code frames (the payload chunks of the
`.apc` file). Each chunk is processed inside a window that adds up to `context_frames`
frames of neighbouring signal on each side (clipped at the signal's ends), and only the
chunk's own frames or samples are kept. The context covers the convolutions' receptive
field; what remains is the small influence of GRN's whole-window statistics, measured in
docs/chunking.md. A signal no longer than one chunk is processed whole, exactly.

Windows of equal length are batched together, so most of a long file runs `batch_size`
chunks per forward pass. Channels are coded independently (they share the batch axis).
The engine's `Runner` computes the batches: in this process's threads (`runners.py`) or in
passes shared between files (`shared.py`).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np

from ..nn.model import APCodec
from ..units import ceil_div
from .base import CodeFrames, Runner, trim
from .runners import LocalRunner


@dataclasses.dataclass(frozen=True)
class ChunkPlan:
    """How a signal of `n_frames` code frames is cut into windows.

    Attributes:
        n_frames: Code frames in the signal.
        chunk_frames: Frames per chunk (the `.apc` payload chunk).
        context_frames: Frames of context on each side of a chunk.
    """

    n_frames: int
    chunk_frames: int = 150
    context_frames: int = 16

    @property
    def n_chunks(self) -> int:
        return ceil_div(self.n_frames, self.chunk_frames)

    def chunk(self, i: int) -> tuple[int, int]:
        """Frames [start, stop) that chunk i owns."""
        return i * self.chunk_frames, min((i + 1) * self.chunk_frames, self.n_frames)

    def covering(self, start: int, stop: int) -> range:
        """The chunks that hold frames [start, stop)."""
        return range(start // self.chunk_frames, ceil_div(stop, self.chunk_frames))

    def window(self, i: int) -> tuple[int, int]:
        """Frames [start, stop) that chunk i is processed with (chunk plus context)."""
        start, stop = self.chunk(i)
        return max(0, start - self.context_frames), min(self.n_frames, stop + self.context_frames)


def _batches(plan: ChunkPlan, chunks: range, batch_size: int) -> Iterator[list[int]]:
    """Runs of consecutive chunks whose windows have the same length, at most batch_size."""
    batch: list[int] = []
    for i in chunks:
        length = plan.window(i)[1] - plan.window(i)[0]
        if batch and (len(batch) == batch_size or
                      plan.window(batch[0])[1] - plan.window(batch[0])[0] != length):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


class _SampleBuffer:
    """Audio arriving in blocks, addressable by absolute sample index, trimmed as used."""

    def __init__(self, blocks: Iterable[np.ndarray], total: int, channels: int) -> None:
        self._blocks = iter(blocks)
        self._total = total
        self._data = np.zeros((channels, 0), dtype=np.float32)
        self._start = 0  # absolute index of self._data[:, 0]

    def get(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) (C, stop - start); past the input's end they are zeros."""
        while self._start + self._data.shape[1] < stop:
            block = next(self._blocks, None)
            if block is None:
                missing = stop - self._start - self._data.shape[1]
                block = np.zeros((self._data.shape[0], missing), dtype=np.float32)
            self._data = np.concatenate([self._data, block.astype(np.float32, copy=False)], 1)
        return self._data[:, start - self._start:stop - self._start]

    def release(self, before: int) -> None:
        """Forget samples before absolute index `before`."""
        if before > self._start:
            self._data = self._data[:, before - self._start:]
            self._start = before


#: Chunks per forward pass on a CPU. Measured (docs/speed.md): 2 to 4 are fastest (the
#: elementwise layers' tensors stay in cache), 8 was 10 to 25 % slower.
CPU_BATCH_SIZE = 2


#: Rows (windows x channels) per forward pass, per window of `batch_size`: a stereo batch
#: runs whole; more channels run in several passes.
ROWS_PER_WINDOW = 4
_Meta = TypeVar("_Meta")


def default_batch_size(model: APCodec) -> int:
    """Chunks per forward pass: `CPU_BATCH_SIZE` on a CPU, more on a GPU (fills it better)."""
    return CPU_BATCH_SIZE if next(model.parameters()).device.type == "cpu" else 32


class ChunkedEngine:
    """The full model's engine (a `base.Engine`): chunks in overlapping windows, batched.

    Args:
        model: The codec (eval mode).
        runner: Where the forward passes run (default: a float32 `LocalRunner`).
        chunk_frames: Code frames per chunk when encoding (a file's own when decoding).
        context_frames: Frames of context on each side of a chunk.
        batch_size: Chunks per forward pass (default: `default_batch_size(model)`).
    """

    def __init__(self, model: APCodec, runner: Runner | None = None, chunk_frames: int = 150,
                 context_frames: int = 16, batch_size: int | None = None) -> None:
        self.model = model
        self.config = model.config
        self.runner = runner or LocalRunner(model)
        self.chunk_frames = chunk_frames
        self.context_frames = context_frames
        self.batch_size = batch_size or default_batch_size(model)

    def plan(self, n_frames: int, chunk_frames: int | None = None) -> ChunkPlan:
        """The chunk layout of `n_frames` frames (in chunks of `chunk_frames`, default
        the engine's)."""
        return ChunkPlan(n_frames, chunk_frames or self.chunk_frames, self.context_frames)

    def encode(self, blocks: Iterable[np.ndarray], samples: int, channels: int
               ) -> Iterator[np.ndarray]:
        """See `base.Engine.encode`: one array per chunk."""
        plan = self.plan(ceil_div(samples, self.config.samples_per_frame))
        return self.encode_chunks(blocks, plan, channels)

    def decode(self, frames: CodeFrames, first: int = 0, count: int | None = None
               ) -> Iterator[np.ndarray]:
        """See `base.Engine.decode`: the chunks that hold the samples, each with its
        context frames."""
        spf = self.config.samples_per_frame
        plan = self.plan(frames.n_frames, frames.chunk_frames)
        stop = frames.n_frames if count is None else ceil_div(first + count, spf)
        chunks = plan.covering(first // spf, stop)
        skip = first - chunks.start * frames.chunk_frames * spf if len(chunks) else 0
        return trim(self.decode_chunks(frames.read, plan, chunks), skip, count)

    @property
    def max_rows(self) -> int:
        """Most rows (windows x channels) in one forward pass: memory stays bounded
        whatever channel count a file has (a crafted header's 1024 channels took 21 GB)."""
        return self.batch_size * ROWS_PER_WINDOW

    def _run(self, method: str, batches: Iterable[tuple[_Meta, np.ndarray]]
             ) -> Iterator[tuple[_Meta, np.ndarray]]:
        """The runner's `map` of (meta, rows) batches, each cut into passes of at most
        `max_rows` rows and joined again: (meta, the batch's results) in order."""
        def pieces() -> Iterator[tuple[tuple[_Meta, bool], np.ndarray]]:
            for meta, rows in batches:
                for start in range(0, len(rows), self.max_rows):
                    yield (meta, start + self.max_rows >= len(rows)), \
                        rows[start:start + self.max_rows]

        done: list[np.ndarray] = []
        for (meta, last), result in self.runner.map(method, pieces()):
            done.append(result)
            if last:
                yield meta, done[0] if len(done) == 1 else np.concatenate(done)
                done = []

    def encode_chunks(self, blocks: Iterable[np.ndarray], plan: ChunkPlan, channels: int
                      ) -> Iterator[np.ndarray]:
        """Encode audio arriving in blocks; yield the codes of each chunk in order.

        Args:
            blocks: (channels, n) float32 arrays at the codec's rate, any sizes, that
                together hold at most `plan.n_frames * samples_per_frame` samples (the
                rest is zeros).
            plan: The chunk layout.
            channels: Number of channels in every block.

        Yields:
            (channels, n_codebooks, frames) int64 codes, one array per chunk.
        """
        spf = self.config.samples_per_frame
        buffer = _SampleBuffer(blocks, plan.n_frames * spf, channels)

        def gather() -> Iterator[tuple[tuple[list[int], list[tuple[int, int]]], np.ndarray]]:
            for batch in _batches(plan, range(plan.n_chunks), self.batch_size):
                windows = [plan.window(i) for i in batch]
                audio = np.stack([buffer.get(a * spf, b * spf) for a, b in windows])  # (W, C, T)
                buffer.release((plan.chunk(batch[-1])[1] - plan.context_frames) * spf)
                yield (batch, windows), audio.reshape(-1, 1, audio.shape[-1])

        for (batch, windows), codes in self._run("encode", gather()):
            codes = codes.reshape(len(batch), channels, *codes.shape[1:])  # (W, C, Q, N)
            for w, i in enumerate(batch):
                start, stop = plan.chunk(i)
                offset = start - windows[w][0]
                yield codes[w, :, :, offset:offset + stop - start]

    def decode_chunks(self, read_frames: Callable[[int, int], np.ndarray], plan: ChunkPlan,
                      chunks: range) -> Iterator[np.ndarray]:
        """Decode chunks of a code sequence; yield each chunk's audio in order.

        Args:
            read_frames: Returns the codes of frames [start, stop) as (C, n_codebooks,
                frames).
            plan: The chunk layout.
            chunks: Which chunks to decode (a contiguous range, for partial decoding).

        Yields:
            (channels, chunk_frames * samples_per_frame) float32 audio at the codec's
            rate, one array per chunk (the last one shorter).
        """
        spf = self.config.samples_per_frame

        def gather() -> Iterator[tuple[tuple[list[int], list[tuple[int, int]], int], np.ndarray]]:
            for batch in _batches(plan, chunks, self.batch_size):
                windows = [plan.window(i) for i in batch]
                codes = np.stack([read_frames(a, b) for a, b in windows])  # (W, C, Q, N)
                n_win, channels = codes.shape[:2]
                yield (batch, windows, channels), codes.reshape(n_win * channels, *codes.shape[2:])

        for (batch, windows, channels), audio in self._run("decode", gather()):
            audio = audio.reshape(len(batch), channels, -1)
            for w, i in enumerate(batch):
                start, stop = plan.chunk(i)
                offset = (start - windows[w][0]) * spf
                yield audio[w, :, offset:offset + (stop - start) * spf]
