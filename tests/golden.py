"""The codes and headers of the committed golden files `data/golden.apc` (format version 1),
`data/golden_v2.apc` (version 2, with the code tables `golden_tables`) and
`data/golden_v3.apc` (version 3: the same codes and tables, with level gains).

They were written once with `write_apc(GOLDEN_PATH, golden_header(), golden_codes())`,
`write_apc(GOLDEN_V2_PATH, golden_v2_header(), golden_v2_codes(), golden_tables())` and
`write_apc(GOLDEN_V3_PATH, golden_v3_header(), golden_v2_codes(), golden_tables(),
golden_v3_levels())` and must keep reading back to exactly these codes and gains: they
guard the format against silent changes. Never regenerate them to make a test pass.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from apcodec_cli.format.bitstream import Header
from apcodec_cli.format.entropy import TOTAL, CodeTables

GOLDEN_PATH = Path(__file__).parent / "data" / "golden.apc"


def golden_header() -> Header:
    # 2.5 s of stereo 44.1 kHz input: 3 chunks, the last one half full.
    return Header(sample_rate=48000, samples_per_frame=320, n_codebooks=4, bits_per_code=10,
                  chunk_frames=150, channels=2, source_sample_rate=44100,
                  source_length=110250, coded_length=120000,
                  fingerprint=bytes.fromhex("0123456789abcdef"), model_name="apcodec-48k")


def golden_codes() -> np.ndarray:
    """(2, 4, 375) codes that use every bit position, from a fixed formula."""
    c, q, n = np.meshgrid(np.arange(2), np.arange(4), np.arange(375), indexing="ij")
    return (n * 37 + q * 257 + c * 511 + (n * n) % 97) % 1024


# ---- format version 2 ---------------------------------------------------------------------

GOLDEN_V2_PATH = Path(__file__).parent / "data" / "golden_v2.apc"
GOLDEN_NETWORK = bytes.fromhex("fedcba9876543210")


def golden_tables() -> CodeTables:
    """Small code tables from an integer formula (no floating point): 3, 2, 2, 2 buckets.

    In every row the multiples of 97 and REPEAT are likely, every other code has
    frequency 1 or 2.
    """
    n_buckets = (3, 2, 2, 2)
    rows = sum(1 + n for n in n_buckets)
    freq = np.ones((rows, 1025), dtype=np.int64)
    for r in range(rows):
        freq[r, :1024:2] += 1
        freq[r, 0:1024:97] = 100_000 * (r + 1) + 1000 * np.arange(11)
        freq[r, 1024] = 0
        freq[r, 1024] = TOTAL - freq[r].sum()
    buckets = np.arange(1024)[None] % np.array(n_buckets)[:, None]
    return CodeTables(freq, buckets, n_buckets)


def golden_v2_codes() -> np.ndarray:
    """(2, 4, 375) codes: chunks 0 and 2 in runs of multiples of 97 (range-coded), chunk 1
    the noise-like codes of `golden_codes` (larger range-coded: stored bit-packed)."""
    c, q, n = np.meshgrid(np.arange(2), np.arange(4), np.arange(375), indexing="ij")
    runs = 97 * ((n // (2 + q) + 3 * q + c + (n * n) % 7 // 5) % 11)
    return np.where((n >= 150) & (n < 300), golden_codes(), runs)


def golden_v2_header() -> Header:
    """The geometry of `golden_header`, in version 2, coded with `golden_tables`."""
    return dataclasses.replace(
        golden_header(), version=2, network_fingerprint=GOLDEN_NETWORK,
        fingerprint=golden_tables().weights_fingerprint(GOLDEN_NETWORK))


# ---- format version 3 ---------------------------------------------------------------------

GOLDEN_V3_PATH = Path(__file__).parent / "data" / "golden_v3.apc"


def golden_v3_header() -> Header:
    """`golden_v2_header` in version 3, with level segments of 30 frames (13 of them)."""
    return dataclasses.replace(golden_v2_header(), version=3, level_frames=30)


def golden_v3_levels() -> np.ndarray:
    """(2, 13) int8 gains spread over the whole byte, -128 included."""
    c, j = np.meshgrid(np.arange(2), np.arange(13), indexing="ij")
    steps = (j * 53 + c * 101) % 256 - 128
    return steps.astype(np.int8)
