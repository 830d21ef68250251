"""One exception family: every error apcodec raises on purpose derives from `ApcodecError`.

The command line reports any of them as one line and a non-zero exit status, without a
traceback; anything else is a bug (`APCODEC_DEBUG=1` shows its traceback). The classes
live beside what raises them (`io/bitstream.py`'s `ApcError` and its kinds, `AudioError`,
`WeightsError`, `PlanError`, training's `DataError`, `StateError`, `RunError`, ...); some
also keep the built-in base they had before (`ValueError`, `RuntimeError`, `ImportError`),
so that callers catching those still catch them.

Imports nothing: every layer may use it.
"""

from __future__ import annotations


class ApcodecError(Exception):
    """Root of apcodec's own errors: a damaged file, a bad input, a missing tool, ..."""
