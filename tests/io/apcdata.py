"""Helpers of the `.apc` format tests (test_bitstream.py, test_bitstream_v2.py,
test_entropy.py): hypothesis settings, random codes and code tables, and reading a file
every way. Damaged files come from `helpers.damage` and `helpers.flip`, shared with the
other tests. Imported by name (`from apcdata import ...`): see tests/helpers.py for why
plain helpers are not in a conftest.py.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from apcodec_cli.io.bitstream import ApcError, ApcReader
from apcodec_cli.io.entropy import CodeTables
from apcodec_cli.train.codetables import quantise


def fast(max_examples: int) -> settings:
    """Hypothesis settings of these tests: `max_examples` cases, no deadline and no
    complaint about slow data (the machine may be busy)."""
    return settings(max_examples=max_examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def random_tables(seed: int, n_codebooks: int = 3, bits: int = 4,
                  n_buckets: tuple[int, ...] | None = None) -> CodeTables:
    """Skewed random tables; some rows put almost all weight on one symbol."""
    rng = np.random.default_rng(seed)
    alphabet = 1 << bits
    n_buckets = n_buckets or tuple(int(n) for n in rng.integers(1, 5, n_codebooks))
    rows = sum(1 + n for n in n_buckets)
    weights = rng.integers(0, 1000, (rows, alphabet + 1)).astype(float) ** 3
    weights[rng.random(rows) < 0.2, rng.integers(0, alphabet + 1)] = 1e15
    buckets = rng.integers(0, np.array(n_buckets)[:, None], (n_codebooks, alphabet))
    return CodeTables(quantise(weights), buckets, n_buckets)


def random_codes(seed: int, shape: tuple[int, int, int], bits: int, hold: float = 0.4,
                 values: int | None = None) -> np.ndarray:
    """Codes with runs (repeats, a share `hold` of frames) and jumps (to `values` codes)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, values or 1 << bits, shape)
    hold = rng.random(shape) < hold
    for t in range(1, shape[2]):
        codes[:, :, t] = np.where(hold[:, :, t], codes[:, :, t - 1], codes[:, :, t])
    return codes


def as_dict(tables: CodeTables) -> dict:
    """The tables as the reference coder (tests/apcref.py) takes them."""
    return {"frequencies": tables.frequencies.tolist(), "buckets": tables.buckets.tolist(),
            "n_buckets": list(tables.n_buckets)}


def read_every_way(open_reader: Callable[[bytes], ApcReader], data: bytes
                   ) -> tuple[ApcReader, np.ndarray] | None:
    """Open, verify and read `data`; anything but success or an ApcError fails the test.

    Returns the reader and the codes when the file reads cleanly, None when it is refused.
    """
    try:
        reader = open_reader(data)
    except ApcError:
        return None
    problems = reader.verify()
    assert all(isinstance(p, ApcError) for p in problems)
    if problems:
        with pytest.raises(ApcError):
            reader.read_all()
        return None
    return reader, reader.read_all()
