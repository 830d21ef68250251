"""Folder conversion with forward passes shared between files (for a GPU).

File by file, the model only ever sees one file's chunks: with many short files its
batches hold a chunk or two, and a GPU idles. Here up to `files` files are converted at
once, each in a thread of its own by the ordinary per-file code (`Codec.encode_file` and
`decode_file`: same outputs, atomic writes, one failure per file; `cli/batch.py`'s
`convert_files` runs a folder this way). Only their chunked forward passes are different:
`SharedPasses` is the `Runner` of the chunked engine that those conversions use
(`Codec.with_runner`), so each file's batch of windows (see `chunked.py`) is handed to it
and waits there, and the main thread stacks waiting batches of the same shape into one
forward pass and hands each file its rows of the result.

A pass runs when its shape has `rows` rows waiting, or when every file in flight is
waiting (the largest group then), or when a batch has waited `patience` seconds (its
group). Memory stays bounded: at most `files` files are open, each holding one batch.
Only the full model's chunked passes are shared; files of the streamable model are
converted in their thread as usual.

Results: the codes are those of the per-file path; decoded audio can differ from it by
float rounding (about 1e-6), because matrix kernels round differently for other batch
sizes, as they already do between the CPU's and the GPU's default batch sizes
(docs/speed.md, "Folders on a GPU"). On a GPU such rounding can also flip a code that
is a near-tie: at least 99 % stay those of the per-file path (docs/gpu.md, tested by
tests/test_gpu.py).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import threading
import time
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from ..errors import ApcodecError
from . import runners

#: Share passes between files: rows per pass; 0 never; unset: on CUDA, the codec's batch size.
ENV_VAR = "APCODEC_FILE_BATCH"

Item = TypeVar("Item")  # one file's conversion (the CLI's `batch.Job`)
_Meta = TypeVar("_Meta")


class SharedPassError(ApcodecError, RuntimeError):
    """A shared pass failed (its error, in one line), or the conversions were stopped."""


class SettingError(ApcodecError, ValueError):
    """$APCODEC_FILE_BATCH is not a whole number."""


def rows_setting() -> int | None:
    """$APCODEC_FILE_BATCH as rows per pass (0: never share), None when unset.

    Raises:
        SettingError: It is set to something else than a whole number >= 0.
    """
    setting = os.environ.get(ENV_VAR, "").strip()
    if not setting:
        return None
    if not setting.isdigit():
        raise SettingError(f"${ENV_VAR} must be a whole number of rows per shared pass "
                           f"(0: never share), not {setting!r}")
    return int(setting)


def shared_rows(codec: Any) -> int:
    """Rows per shared forward pass for a folder coded with `codec`; 0: file by file."""
    setting = rows_setting()
    if setting is not None:
        return setting
    on_gpu = next(codec.model.parameters()).device.type == "cuda"
    return codec.batch_size if on_gpu else 0


@dataclasses.dataclass(eq=False)
class _Request:
    """One file's batch waiting for its pass."""

    method: str
    batch: np.ndarray
    since: float
    result: np.ndarray | None = None
    error: str | None = None
    done: bool = False

    @property
    def shape(self) -> tuple:
        """What must match for batches to share a pass (the row count need not)."""
        return self.method, self.batch.shape[1:], self.batch.dtype


class SharedPasses:
    """Forward passes of a model shared by the threads converting files.

    A `base.Runner`: the chunked engine of each file's thread calls `map`, whose batches
    wait here for a shared pass; `run` converts files and runs the passes in the calling
    thread.
    """

    def __init__(self, model: Any, rows: int, patience: float = 0.05, bf16: bool = False
                 ) -> None:
        self._model = model
        self._bf16 = bf16
        self._rows = max(1, rows)
        self._patience = patience
        self._cond = threading.Condition()
        self._pending: list[_Request] = []  # oldest first
        self._running = 0  # files being converted
        self._finished: list[tuple[Any, str | None]] = []
        self._stopped = False

    def map(self, method: str, batches: Iterable[tuple[_Meta, np.ndarray]]
            ) -> Iterator[tuple[_Meta, np.ndarray]]:
        """`model.<method>` of each (meta, batch) in turn, each computed in a shared pass."""
        for meta, batch in batches:
            yield meta, self(method, batch)

    def __call__(self, method: str, batch: np.ndarray) -> np.ndarray:
        """The result of `model.<method>(batch)`, computed in a shared pass."""
        request = _Request(method, batch, time.monotonic())
        with self._cond:
            if self._stopped:
                raise SharedPassError("conversion stopped")
            self._pending.append(request)
            self._cond.notify_all()
            while not request.done:
                self._cond.wait()
        if request.error is not None:
            raise SharedPassError(request.error)
        return request.result

    def run(self, items: Sequence[Item], convert: Callable[[Item], str | None], files: int,
            finish: Callable[[Item, str | None], None]) -> None:
        """Convert `items`, `files` at a time, each in its own thread; run their passes here.

        `convert(item)` returns its error as one line, or None when it succeeded;
        `finish(item, error)` is called in this thread as each item ends.
        """
        left = len(items)
        with concurrent.futures.ThreadPoolExecutor(max(1, files), "apcodec-file") as pool:
            try:
                for item in items:
                    pool.submit(self._convert, convert, item)
                while left:
                    group, finished = self._next()
                    if group:
                        self._compute(group)
                    for item, error in finished:
                        left -= 1
                        finish(item, error)
            finally:  # also on Ctrl-C: waiting files fail (atomically), queued ones never start
                self._stop()
                pool.shutdown(wait=True, cancel_futures=True)

    def _convert(self, convert: Callable[[Item], str | None], item: Item) -> None:
        with self._cond:
            self._running += 1
        error = "conversion stopped"
        try:
            error = convert(item)
        finally:
            with self._cond:
                self._running -= 1
                self._finished.append((item, error))
                self._cond.notify_all()

    def _next(self) -> tuple[list[_Request], list[tuple[Any, str | None]]]:
        """Wait for a pass that is due or for files that finished; take them."""
        with self._cond:
            while True:
                group = self._due(time.monotonic())
                finished, self._finished = self._finished, []
                if group or finished:
                    return group, finished
                oldest = self._pending[0].since if self._pending else None
                self._cond.wait(None if oldest is None else
                                max(0.0, oldest + self._patience - time.monotonic()))

    def _due(self, now: float) -> list[_Request]:
        """The requests to run in one pass now (removed from the queue), or none yet."""
        if not self._pending:
            return []
        groups: dict[tuple, list[_Request]] = {}  # in the order of their oldest request
        for request in self._pending:
            groups.setdefault(request.shape, []).append(request)
        rows = {key: sum(len(r.batch) for r in group) for key, group in groups.items()}
        full = [key for key in groups if rows[key] >= self._rows]
        if full:
            key = full[0]
        elif len(self._pending) >= self._running:  # every file is waiting: the biggest
            key = max(groups, key=rows.__getitem__)
        elif now - self._pending[0].since >= self._patience:  # waited long enough
            key = self._pending[0].shape
        else:
            return []
        group, total = [], 0
        for request in groups[key]:
            if group and total + len(request.batch) > self._rows:
                break
            group.append(request)
            total += len(request.batch)
        for request in group:
            self._pending.remove(request)
        return group

    def _compute(self, group: list[_Request]) -> None:
        """One forward pass over the stacked batches; each request gets its own rows."""
        try:
            out = runners.run_model(self._model, group[0].method,
                                    np.concatenate([r.batch for r in group]), self._bf16)
            parts = np.split(out, np.cumsum([len(r.batch) for r in group])[:-1])
            for request, part in zip(group, parts):
                request.result = part
        except Exception as exc:  # e.g. out of GPU memory: these files fail, others go on
            for request in group:
                request.error = f"forward pass failed: {exc}".splitlines()[0]
        with self._cond:
            for request in group:
                request.done = True
            self._cond.notify_all()

    def _stop(self) -> None:
        """Fail every waiting and every later request."""
        with self._cond:
            self._stopped = True
            for request in self._pending:
                request.error, request.done = "conversion stopped", True
            self._pending.clear()
            self._cond.notify_all()
