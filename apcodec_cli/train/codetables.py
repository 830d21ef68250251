"""Estimate the code tables of format version 2 (`entropy.py`) from codes of training audio.

Counts are gathered chunk by chunk exactly as the coder sees them (a chunk's first frame
has no predecessor). For each codebook, the context codes (2**bits of them) are grouped
into `n_buckets` buckets by a k-means on their next-symbol distributions: each context
code goes to the bucket whose pooled distribution codes its own symbols in the fewest
bits (cross-entropy), and the buckets are re-pooled, a fixed number of times. Each table
is its counts plus `smoothing` pseudo-counts spread as the codebook's overall
distribution, quantised to integers >= 1 that sum to 2**24. Numpy only.
"""

from __future__ import annotations

import numpy as np

from ..format.entropy import TOTAL, CodeTables, symbols_and_contexts


class TableCounts:
    """Symbol counts per context over chunks of codes.

    Args:
        n_codebooks: Codebooks per frame.
        alphabet: Codes per codebook (2**bits).
        chunk_frames: Frames per chunk of the files the tables will code.
    """

    def __init__(self, n_codebooks: int, alphabet: int, chunk_frames: int = 150) -> None:
        self.alphabet = alphabet
        self.chunk_frames = chunk_frames
        # [k, context code + 1, symbol]: row 0 is the "none" context.
        self.counts = np.zeros((n_codebooks, alphabet + 1, alphabet + 1), dtype=np.int64)
        self.frames = 0

    def add(self, codes: np.ndarray) -> None:
        """Count (channels, n_codebooks, frames) codes, cut into chunks as a file would be."""
        codes = np.asarray(codes, dtype=np.int64)
        codebook = np.arange(codes.shape[1])[:, None]
        for start in range(0, codes.shape[2], self.chunk_frames):
            for channel in codes[:, :, start:start + self.chunk_frames]:
                symbols, context = symbols_and_contexts(channel, self.alphabet)
                np.add.at(self.counts, (codebook, context + 1, symbols), 1)
        self.frames += codes.shape[0] * codes.shape[2]

    def fit(self, n_buckets: int = 64, smoothing: float = 128.0, iterations: int = 20
            ) -> CodeTables:
        """The tables: `n_buckets` per codebook, `smoothing` pseudo-counts per table."""
        if not self.frames:
            raise ValueError("no codes were counted")
        rows, maps = [], []
        for counts in self.counts:
            prior = counts.sum(axis=0) + 0.5
            prior /= prior.sum()
            buckets, pooled = cluster(counts[1:], n_buckets, prior, smoothing, iterations)
            rows.append(counts[:1] + smoothing * prior)
            rows.append(pooled + smoothing * prior)
            maps.append(buckets)
        return CodeTables(quantise(np.concatenate(rows)), np.stack(maps),
                          (n_buckets,) * len(maps))


def cluster(joint: np.ndarray, n_buckets: int, prior: np.ndarray, smoothing: float,
            iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """Group context codes by their symbol distributions.

    Args:
        joint: (context codes, symbols) counts.
        n_buckets: Buckets to form.
        prior: Symbol distribution that smooths each bucket's (see module docstring).
        smoothing: Pseudo-counts of the prior per bucket.
        iterations: Assignment/pooling rounds.

    Returns:
        The bucket of each context code, and the (n_buckets, symbols) pooled counts.
    """
    seen = np.flatnonzero(joint.sum(axis=1))
    counts = joint[seen].astype(np.float64)  # codes never seen take no part; float: BLAS
    pooled = np.zeros((n_buckets, joint.shape[1]))
    start = np.argsort(-counts.sum(axis=1), kind="stable")[:n_buckets]
    pooled[: len(start)] = counts[start]  # the most frequent codes seed the buckets
    for _ in range(iterations):
        table = pooled + smoothing * prior
        cost = -np.log(table / table.sum(axis=1, keepdims=True))
        assigned = (counts @ cost.T).argmin(axis=1)  # fewest nats for each code's symbols
        pooled = np.zeros_like(pooled)
        order = np.argsort(assigned, kind="stable")
        used, first = np.unique(assigned[order], return_index=True)
        if len(order):
            pooled[used] = np.add.reduceat(counts[order], first, axis=0)
    # Codes never seen go where the prior itself costs least.
    buckets = np.full(joint.shape[0], int(np.argmin(cost @ prior)), dtype=np.int64)
    buckets[seen] = assigned
    return buckets, pooled


def quantise(weights: np.ndarray) -> np.ndarray:
    """Rows of non-negative weights -> integer rows >= 1 summing to 2**24 each, in
    proportion (the rounding remainder goes to the heaviest symbols)."""
    weights = np.asarray(weights, dtype=np.float64)
    n = weights.shape[1]
    share = weights / weights.sum(axis=1, keepdims=True)
    out = 1 + np.floor(share * (TOTAL - n)).astype(np.int64)
    short = TOTAL - out.sum(axis=1)
    order = np.argsort(-share, axis=1, kind="stable")
    for row, missing in enumerate(short.tolist()):
        out[row, order[row, :missing]] += 1
    return out
