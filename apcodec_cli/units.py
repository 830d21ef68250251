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
