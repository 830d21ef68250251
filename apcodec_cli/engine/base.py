"""The engine protocol: what `Codec` asks of whatever runs its model over signals.

    >>> engine.encode(blocks, samples, channels)   # audio blocks -> code arrays, in order
    >>> engine.decode(CodeFrames(read, n, chunk), first, count)   # -> audio blocks

Two engines implement it: `chunked.ChunkedEngine` (the full model, in overlapping windows
of frames) and `stream.StreamEngine` (the streamable model, as one causal stream). `Codec`
picks one when it is built and only delegates to it.

The chunked engine's forward passes run where its `Runner` says: `runners.LocalRunner`
(threads of this process, optionally under bf16 autocast) or `shared.SharedPasses`
(passes shared between files converted at once). The runner is given to the engine when it
is built. Streams run their packed step in the calling thread and take no runner.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Iterator, Protocol, TypeVar

import numpy as np

from ..nn.config import CodecConfig


@dataclasses.dataclass(frozen=True)
class CodeFrames:
    """A sequence of code frames to decode.

    Attributes:
        read: `read(start, stop)` returns frames [start, stop) as (C, n_codebooks,
            stop - start) int64 codes.
        n_frames: Frames in the sequence.
        chunk_frames: Frames per stored chunk (a `.apc` file's payload chunk): the unit an
            engine reads and computes them in.
    """

    read: Callable[[int, int], np.ndarray]
    n_frames: int
    chunk_frames: int


class Engine(Protocol):
    """Runs a model over signals of any length, in bounded memory."""

    config: CodecConfig

    def encode(self, blocks: Iterable[np.ndarray], samples: int, channels: int
               ) -> Iterator[np.ndarray]:
        """Codes of audio arriving in (C, n) float32 blocks at the codec's rate, `samples`
        per channel in all: (C, n_codebooks, frames) int64 arrays, in order."""
        ...

    def decode(self, frames: CodeFrames, first: int = 0, count: int | None = None
               ) -> Iterator[np.ndarray]:
        """Audio of samples [first, first + count) of the decoded frames (count None: all
        from `first` on): (C, n) float32 blocks at the codec's rate, in order. Only the
        frames that those samples need are read."""
        ...


_Meta = TypeVar("_Meta")


class Runner(Protocol):
    """Where an engine's forward passes run."""

    def map(self, method: str, batches: Iterable[tuple[_Meta, np.ndarray]]
            ) -> Iterator[tuple[_Meta, np.ndarray]]:
        """`model.<method>` ("encode" or "decode") of each (meta, batch), as arrays;
        yields (meta, result) in the order of `batches`."""
        ...


def trim(blocks: Iterable[np.ndarray], skip: int, count: int | None
         ) -> Iterator[np.ndarray]:
    """Drop the first `skip` samples of a stream of (C, n) blocks and stop after `count`
    more (None: pass the rest through as it comes)."""
    if not skip and count is None:
        yield from blocks
        return
    for block in blocks:
        if skip >= block.shape[1]:
            skip -= block.shape[1]
            continue
        block, skip = block[:, skip:None if count is None else skip + count], 0
        yield block
        if count is not None:
            count -= block.shape[1]
            if count <= 0:
                return
