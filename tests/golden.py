"""The codes and header of the committed golden file `data/golden.apc` (format version 1).

The file was written once with `write_apc(GOLDEN_PATH, golden_header(), golden_codes())`
and must keep reading back to exactly these codes: it guards the format against silent
changes. Never regenerate it to make a test pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from apcodec_cli.io.bitstream import Header

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
