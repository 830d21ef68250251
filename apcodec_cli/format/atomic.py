"""Atomic file output: write to a hidden temporary file beside the target, then rename.

Every output of the package is written so, by `atomic_write` (a binary file object) or
`atomic_path` (a temporary name, for writers that open files themselves).

The temporary file of `dir/NAME` is `dir/.NAME.PID.partial`. It disappears however a run
ends: renamed into place on success; removed when the block raises (errors, Ctrl-C, and
SIGTERM in a command, see `runtime.py`); removed by `remove_partials` when a process must
exit at once (a worker told to stop, or whose parent died: registered with
`runtime.at_exit_now` by its first temporary file or folder); and, when a process died
without any of these (SIGKILL, power loss), removed by the next run that writes the same
target (`remove_stale`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, TypeVar

from .. import runtime

T = TypeVar("T")

_SUFFIX = ".partial"
_LOCK = threading.RLock()  # re-entrant: a signal handler may run while the main thread holds it
_PARTIALS: set[Path] = set()  # this process's temporary files, created or about to be
_SCRATCH: set[Path] = set()  # this process's scratch folders (`scratch_dir`)


def partial_path(path: Path, pid: int | None = None) -> Path:
    """The temporary file that process `pid` (default: this one) writes for `path`."""
    return path.with_name(f".{path.name}.{os.getpid() if pid is None else pid}{_SUFFIX}")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temporary file for writing that becomes `path` only if the block succeeds.

    On any exception (KeyboardInterrupt included) the temporary file is removed and the
    target is left as it was, so a failed or interrupted run never leaves a partial output.
    I/O errors (a full disk, say) name `path`, not the temporary file.
    """
    path = Path(path)
    # Opened under the lock that registers it: `remove_partials` sees both or neither.
    with _replacing(path, lambda tmp: _named(path, open, tmp, "wb")) as raw:
        try:
            yield _TargetFile(raw, path)
        except BaseException:
            with contextlib.suppress(OSError):
                raw.close()
            raise
        _named(path, raw.close)  # flushes: a full disk may show only now


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """The temporary path to write (for writers that want a name: torch.save, soundfile)
    that becomes `path` only if the block succeeds; removed when it raises."""
    with _replacing(Path(path), lambda tmp: tmp) as tmp:
        yield tmp


def atomic_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically: a reader finds the old file or the whole
    new one, never a part (indexes, configs, sidecars)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def _replacing(path: Path, create: Callable[[Path], T]) -> Iterator[T]:
    """The core of both: register `path`'s temporary file and call `create(tmp)` under one
    hold of the lock, yield what it returns, then rename the temporary file onto `path`.

    If `create` or the block raises, or the rename fails, the temporary file is removed;
    whatever happens it is unregistered at the end.
    """
    tmp = partial_path(path)
    try:
        with _LOCK:  # registered and created together: `remove_partials` sees both or neither
            runtime.at_exit_now(remove_partials)
            _PARTIALS.add(tmp)
            created = create(tmp)
        yield created
        _named(path, os.replace, tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        with _LOCK:
            _PARTIALS.discard(tmp)


def remove_partials() -> None:
    """Remove this process's temporary files and scratch folders now, for a process about
    to `os._exit`."""
    with _LOCK:
        for tmp in _PARTIALS:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        for folder in _SCRATCH:
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary folder (in the system's temp dir) removed when the block ends, and by
    `remove_partials` when a worker must exit at once (`tempfile.TemporaryDirectory`
    alone stays behind then)."""
    with _LOCK:
        runtime.at_exit_now(remove_partials)
        folder = Path(tempfile.mkdtemp(prefix=prefix))
        _SCRATCH.add(folder)
    try:
        yield folder
    finally:
        with _LOCK:
            _SCRATCH.discard(folder)
        shutil.rmtree(folder, ignore_errors=True)


def remove_stale(targets: Iterable[str | os.PathLike]) -> list[Path]:
    """Remove the temporary files that dead processes left for these targets.

    Each folder is listed once. A file counts as stale when the process named in it no
    longer runs on this machine (a live one may still be writing). Returns what was removed.
    """
    by_folder: dict[Path, set[str]] = {}
    for target in map(Path, targets):
        by_folder.setdefault(target.parent, set()).add(target.name)
    removed = []
    for folder, names in by_folder.items():
        try:
            entries = os.listdir(folder)
        except OSError:  # no folder yet: nothing stale in it
            continue
        for entry in entries:
            owner = _owner(entry, names)
            if owner is not None and not _alive(owner):
                with contextlib.suppress(OSError):
                    os.unlink(folder / entry)
                    removed.append(folder / entry)
    return removed


def _owner(entry: str, names: set[str]) -> int | None:
    """The process id in `.NAME.PID.partial` when NAME is one of `names`, else None."""
    if not (entry.startswith(".") and entry.endswith(_SUFFIX)):
        return None
    name, _, pid = entry[1:-len(_SUFFIX)].rpartition(".")
    return int(pid) if name in names and pid.isdigit() else None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _named(path: Path, call: Callable[..., T], *args: Any) -> T:
    """`call(*args)`, with an OSError's file name set to `path` (the user's name for it)."""
    try:
        return call(*args)
    except OSError as exc:
        if exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from None


class _TargetFile:
    """The temporary file as the writer sees it: its errors name the target."""

    def __init__(self, raw: BinaryIO, path: Path) -> None:
        self._raw, self._path = raw, path
        self.name = str(path)

    def write(self, data: bytes) -> int:
        return _named(self._path, self._raw.write, data)

    def flush(self) -> None:
        _named(self._path, self._raw.flush)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return _named(self._path, self._raw.seek, offset, whence)

    def tell(self) -> int:
        return _named(self._path, self._raw.tell)

    def read(self, size: int = -1) -> bytes:
        return _named(self._path, self._raw.read, size)

    def seekable(self) -> bool:
        return self._raw.seekable()
