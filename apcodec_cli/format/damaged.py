"""Damaged chunks of a `.apc` file: found before decoding, and skipped when asked.

A decode checks the CRC of every chunk it will read before it computes anything, so one
flipped bit in a long file fails at once instead of after minutes of work. With
`skip_damaged` the damaged chunks are read as code 0 and their samples are written as
silence instead (`silenced`), so the rest of the file is kept.

numpy only, no torch.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

import numpy as np

from .bitstream import ApcError, ApcReader, ChecksumError, Header


def find_damaged(reader: ApcReader, chunks: Iterable[int]) -> list[ChecksumError]:
    """The checksum errors of `chunks` (CRC checks only: nothing is decoded)."""
    found = []
    for index in chunks:
        try:
            reader.check_chunk(index)
        except ChecksumError as error:
            found.append(error)
    return found


def refuse(damaged: list[ChecksumError]) -> None:
    """Raise the first damage found, saying how many more and how to keep the rest."""
    if damaged:
        more = f" (and {len(damaged) - 1} more chunks)" if len(damaged) > 1 else ""
        raise ChecksumError(f"{damaged[0]}{more}; nothing was decoded (--skip-damaged "
                            "writes silence for damaged chunks)", damaged[0].chunk)


def skipping(reader: ApcReader, bad: set[int]) -> Callable[[int, int], np.ndarray]:
    """`read_frames(a, b)` of `reader` with the chunks in `bad` read as code 0."""
    h = reader.header
    if not bad:
        return reader.read_frames

    def read(a: int, b: int) -> np.ndarray:
        parts = [np.zeros((h.channels, h.n_codebooks, 0), np.int64)]
        for index in range(a // h.chunk_frames, (b - 1) // h.chunk_frames + 1 if b > a else 0):
            start, stop = h.chunk_frame_range(index)
            lo, hi = max(a, start), min(b, stop)
            parts.append(np.zeros((h.channels, h.n_codebooks, hi - lo), np.int64)
                         if index in bad else reader.read_frames(lo, hi))
        return np.concatenate(parts, axis=2)

    return read


def silenced(blocks: Iterable[np.ndarray], first: int, spans: list[tuple[int, int]]
             ) -> Iterator[np.ndarray]:
    """(C, n) blocks of a signal starting at sample `first`, with the samples of each
    [start, stop) in `spans` (absolute sample indices) set to zero."""
    position = first
    for block in blocks:
        end = position + block.shape[1]
        hits = [(max(a, position), min(b, end)) for a, b in spans if a < end and b > position]
        if hits:
            block = block.copy()
            for a, b in hits:
                block[:, a - position:b - position] = 0.0
        yield block
        position = end


def damaged_spans(reader: ApcReader, damaged: list[ChecksumError]) -> list[tuple[int, int]]:
    """The samples [start, stop) at the codec's rate of each damaged chunk."""
    h = reader.header
    spans = []
    for error in damaged:
        if error.chunk is None:
            raise ApcError(str(error))
        start, stop = h.chunk_frame_range(error.chunk)
        spans.append((start * h.samples_per_frame, stop * h.samples_per_frame))
    return spans


def chunks_read(header: Header, first: int, count: int) -> range:
    """The chunks a decode of samples [first, first + count) reads: those of the whole
    file, or of the range and one chunk each side (context; further ones, should a
    decoder's history reach them, are checked when read)."""
    if first == 0 and count == header.coded_length:
        return range(header.n_chunks)
    spf, size = header.samples_per_frame, header.chunk_frames
    low = max(0, first // spf // size - 1)
    return range(low, min(header.n_chunks, -(-(first + count) // spf) // size + 2))
