"""Numbers and arithmetic that every layer shares, written once.

Imports nothing of the package (and no torch): every layer may use it.
"""

from __future__ import annotations

#: Hz. Every preset codes at this rate (`CodecConfig.sample_rate`); the training corpus,
#: the evaluation's references and Opus round trips are at it too.
SAMPLE_RATE = 48_000


def ceil_div(a: int, b: int) -> int:
    """ceil(a / b) of integers, exactly (no float): frames of a length, chunks of frames."""
    return -(-a // b)


#: Hz. The lowest and highest input rates taken (encode) and that a file may name as its
#: source's (decode): a 96 KB WAV labelled 1 Hz would otherwise be resampled into 13 hours.
#: Telephone audio (8 kHz) and studio rates (768 kHz) lie well inside.
MIN_SOURCE_RATE = 1_000
MAX_SOURCE_RATE = 768_000


def resampled_length(frames: int, rate_in: int, rate_out: int) -> int:
    """Samples after resampling `frames` samples, rounding half up (what soxr gives)."""
    return (2 * frames * rate_out + rate_in) // (2 * rate_in)


def counted(n: int, noun: str) -> str:
    """'1 file', '2 files': a count and its noun, plural by an added 's'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
