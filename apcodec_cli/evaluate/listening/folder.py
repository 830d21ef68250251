"""The report's folder: built in a hidden folder beside it and renamed into place at the end.

So a run that fails or is stopped leaves no half-written report, and the report of an
earlier run stays as it was until the new one is complete. An existing folder is replaced
only with `force`, and only if it is itself a listening report (its `index.html` names
the generator, `page.GENERATOR`): `--force` never deletes a folder of other files.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from ...errors import ApcodecError
from .page import GENERATOR, PAGE


class ReportFolderError(ApcodecError, ValueError):
    """The report's folder cannot be written or replaced."""


def is_report(folder: Path) -> bool:
    """Whether `folder` holds a listening report written by this command."""
    page = folder / PAGE
    if not page.is_file():
        return False
    with open(page, encoding="utf-8", errors="replace") as f:
        return f'content="{GENERATOR}"' in f.read(4096)


def check_target(target: str | Path, force: bool) -> None:
    """Raise ReportFolderError if the report may not be written to `target`."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise ReportFolderError(f"{target} exists and is not a folder")
    if not target.is_dir() or not any(target.iterdir()):
        return
    if not force:
        raise ReportFolderError(f"{target} exists: pass --force to replace it")
    if not is_report(target):
        raise ReportFolderError(f"{target} is not a listening report (no {PAGE} of "
                                f"{GENERATOR}): it is not replaced, even with --force")


@contextlib.contextmanager
def building(target: str | Path) -> Iterator[Path]:
    """A new hidden folder beside `target` to write into; it becomes `target` (replacing
    what was there) when the block succeeds, and is removed when the block raises."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial",
                                 dir=target.parent))
    try:
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    work.chmod(0o755)  # mkdtemp's folder is private; a report is meant to be shared
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old",
                                    dir=target.parent))
        target.rename(old / target.name)
        shutil.rmtree(old, ignore_errors=True)
    work.rename(target)
