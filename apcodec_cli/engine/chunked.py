"""Chunked encoding and decoding of signals of any length in bounded memory.

The signal is cut into chunks of `chunk_frames` code frames (the payload chunks of the
`.apc` file). Each chunk is processed inside a window that adds up to `context_frames`
frames of neighbouring signal on each side (clipped at the signal's ends), and only the
chunk's own frames or samples are kept. The context covers the convolutions' receptive
field; what remains is the small influence of GRN's whole-window statistics, measured in
docs/chunking.md. A signal no longer than one chunk is processed whole, exactly.

Windows of equal length are batched together, so most of a long file runs `batch_size`
chunks per forward pass. Channels are coded independently (they share the batch axis).

On a CPU with several threads, batches run in parallel rather than each operation: `workers`
Python threads each run one batch with one intra-op thread (the heavy operations release the
GIL). Small elementwise operations scale badly across threads and whole batches scale almost
perfectly; the results are the same, since every batch is computed exactly as before. See
docs/speed.md for the measurements behind the defaults.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import functools
from typing import Any, Callable, Iterable, Iterator, TypeVar

import numpy as np
import torch

from ..nn.model import APCodec
from ..units import ceil_div


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


def run_model(model: APCodec, method: str, batch: np.ndarray, bf16: bool = False
              ) -> np.ndarray:
    """`model.encode` or `model.decode` (`method`) of an array batch, on the model's device;
    with `bf16`, under bf16 autocast (see `weights.resolve_precision`)."""
    device = next(model.parameters()).device
    with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=bf16):
        tensor = torch.from_numpy(np.ascontiguousarray(batch)).to(device)
        out = getattr(model, method)(tensor)
        return (out.float() if out.is_floating_point() else out).cpu().numpy()


#: Runs a forward pass somewhere else than `run_model` in this thread: (method, batch) ->
#: output, as arrays. `engine/shared.py` uses one to share passes between files.
Forward = Callable[[str, np.ndarray], np.ndarray]


def default_batch_size(model: APCodec) -> int:
    """Chunks per forward pass: `CPU_BATCH_SIZE` on a CPU, more on a GPU (fills it better)."""
    return CPU_BATCH_SIZE if next(model.parameters()).device.type == "cpu" else 32


def default_workers(model: APCodec) -> int:
    """Batches computed at once: one per intra-op thread on a CPU, one on a GPU."""
    if next(model.parameters()).device.type != "cpu":
        return 1
    return max(1, torch.get_num_threads())


@contextlib.contextmanager
def _one_thread_each(workers: int) -> Iterator[None]:
    """While batches run on `workers` threads, each of them computes with one thread."""
    if workers <= 1:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


_Meta = TypeVar("_Meta")


def run_batches(fn: Callable[[np.ndarray], np.ndarray], batches: Iterable[tuple[_Meta, np.ndarray]],
                workers: int = 1) -> Iterator[tuple[_Meta, np.ndarray]]:
    """Apply `fn` to each (meta, array) of `batches`; yield (meta, result) in input order.

    With `workers > 1` up to `workers` batches are computed at once on as many threads, and
    the next batch is gathered (file reading, resampling, bit-unpacking) while they run.
    Only `workers + 1` batches are ever held, so memory stays flat in the signal's length.
    """
    if workers <= 1:
        for meta, batch in batches:
            yield meta, fn(batch)
        return
    with _one_thread_each(workers), \
            concurrent.futures.ThreadPoolExecutor(workers, "apcodec-batch") as pool:
        pending: collections.deque[tuple[Any, concurrent.futures.Future]] = collections.deque()
        try:
            for meta, batch in batches:
                pending.append((meta, pool.submit(fn, batch)))
                if len(pending) > workers:
                    meta, future = pending.popleft()
                    yield meta, future.result()
            while pending:
                meta, future = pending.popleft()
                yield meta, future.result()
        finally:  # a consumer that stops early: drop what has not started
            for _, future in pending:
                future.cancel()


def encode_blocks(model: APCodec, blocks: Iterable[np.ndarray], plan: ChunkPlan,
                  channels: int, batch_size: int = CPU_BATCH_SIZE,
                  workers: int | None = None, forward: Forward | None = None,
                  bf16: bool = False) -> Iterator[np.ndarray]:
    """Encode audio arriving in blocks; yield the codes of each chunk in order.

    Args:
        model: The codec (eval mode).
        blocks: (channels, n) float32 arrays at the codec's rate, any sizes, that together
            hold at most `plan.n_frames * samples_per_frame` samples (the rest is zeros).
        plan: The chunk layout.
        channels: Number of channels in every block.
        batch_size: Chunks per forward pass.
        workers: Batches computed at once (default: `default_workers(model)`, or 1 with
            `forward`).
        forward: Runs the forward passes (default: `run_model`, in this thread).
        bf16: Run them under bf16 autocast (with the default `forward`).

    Yields:
        (channels, n_codebooks, frames) int64 codes, one array per chunk.
    """
    spf = model.config.samples_per_frame
    buffer = _SampleBuffer(blocks, plan.n_frames * spf, channels)

    def gather() -> Iterator[tuple[tuple[list[int], list[tuple[int, int]]], np.ndarray]]:
        for batch in _batches(plan, range(plan.n_chunks), batch_size):
            windows = [plan.window(i) for i in batch]
            audio = np.stack([buffer.get(a * spf, b * spf) for a, b in windows])  # (W, C, T)
            buffer.release((plan.chunk(batch[-1])[1] - plan.context_frames) * spf)
            yield (batch, windows), audio.reshape(-1, 1, audio.shape[-1])

    run = forward or functools.partial(run_model, model, bf16=bf16)
    workers = (default_workers(model) if forward is None else 1) if workers is None else workers
    for (batch, windows), codes in run_batches(lambda a: run("encode", a), gather(), workers):
        codes = codes.reshape(len(batch), channels, *codes.shape[1:])  # (W, C, Q, N)
        for w, i in enumerate(batch):
            start, stop = plan.chunk(i)
            offset = start - windows[w][0]
            yield codes[w, :, :, offset:offset + stop - start]


def decode_chunks(model: APCodec, read_frames: Callable[[int, int], np.ndarray],
                  plan: ChunkPlan, chunks: range, batch_size: int = CPU_BATCH_SIZE,
                  workers: int | None = None, forward: Forward | None = None,
                  bf16: bool = False) -> Iterator[np.ndarray]:
    """Decode chunks of a code sequence; yield each chunk's audio in order.

    Args:
        model: The codec (eval mode).
        read_frames: Returns the codes of frames [start, stop) as (C, n_codebooks, frames).
        plan: The chunk layout.
        chunks: Which chunks to decode (a contiguous range, for partial decoding).
        batch_size: Chunks per forward pass.
        workers: Batches computed at once (default: `default_workers(model)`, or 1 with
            `forward`).
        forward: Runs the forward passes (default: `run_model`, in this thread).
        bf16: Run them under bf16 autocast (with the default `forward`).

    Yields:
        (channels, chunk_frames * samples_per_frame) float32 audio at the codec's rate,
        one array per chunk (the last one shorter).
    """
    spf = model.config.samples_per_frame

    def gather() -> Iterator[tuple[tuple[list[int], list[tuple[int, int]], int], np.ndarray]]:
        for batch in _batches(plan, chunks, batch_size):
            windows = [plan.window(i) for i in batch]
            codes = np.stack([read_frames(a, b) for a, b in windows])  # (W, C, Q, N)
            n_win, channels = codes.shape[:2]
            yield (batch, windows, channels), codes.reshape(n_win * channels, *codes.shape[2:])

    run = forward or functools.partial(run_model, model, bf16=bf16)
    workers = (default_workers(model) if forward is None else 1) if workers is None else workers
    for (batch, windows, channels), audio in run_batches(
            lambda c: run("decode", c), gather(), workers):
        audio = audio.reshape(len(batch), channels, -1)
        for w, i in enumerate(batch):
            start, stop = plan.chunk(i)
            offset = (start - windows[w][0]) * spf
            yield audio[w, :, offset:offset + (stop - start) * spf]
