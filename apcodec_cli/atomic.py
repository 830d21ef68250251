"""Atomic file output: write to a hidden temporary file beside the target, then rename."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import BinaryIO, Iterator


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temporary file for writing that becomes `path` only if the block succeeds.

    On any exception (KeyboardInterrupt included) the temporary file is removed and the
    target is left as it was, so a failed or interrupted run never leaves a partial output.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(tmp, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
