"""One exception family: every error apcodec raises on purpose derives from `ApcodecError`.

The command line reports any of them as one line and a non-zero exit status, without a
traceback; anything else is a bug (`APCODEC_DEBUG=1` shows its traceback). The classes
live beside what raises them (`format/header.py`'s `ApcError` and its kinds, `AudioError`,
`WeightsError`, `PlanError`, training's `DataError`, `StateError`, `RunError`, ...); some
also keep the built-in base they had before (`ValueError`, `RuntimeError`, `ImportError`),
so that callers catching those still catch them.

`describe` words any exception in one line, for every command. Imports nothing: every
layer may use it.
"""

from __future__ import annotations


class ApcodecError(Exception):
    """Root of apcodec's own errors: a damaged file, a bad input, a missing tool, ..."""


def describe(exc: BaseException) -> str:
    """One-line description of an exception for users (no traceback)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:  # "No space left on device: out.wav"
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return text
