"""Forward passes in this process: `run_model` and the `LocalRunner` of the chunked engine.

On a CPU with several threads, batches run in parallel rather than each operation: `workers`
Python threads each run one batch with one intra-op thread (the heavy operations release the
GIL). Small elementwise operations scale badly across threads and whole batches scale almost
perfectly; the results are the same, since every batch is computed exactly as before. See
docs/speed.md for the measurements behind the defaults. (`shared.SharedPasses` is the other
runner: passes shared between files.)
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
from typing import Any, Callable, Iterable, Iterator, TypeVar

import numpy as np
import torch

from ..nn.model import APCodec


def run_model(model: APCodec, method: str, batch: np.ndarray, bf16: bool = False
              ) -> np.ndarray:
    """`model.encode` or `model.decode` (`method`) of an array batch, on the model's device;
    with `bf16`, under bf16 autocast (see `runtime.resolve_precision`)."""
    device = next(model.parameters()).device
    with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=bf16):
        tensor = torch.from_numpy(np.ascontiguousarray(batch)).to(device)
        out = getattr(model, method)(tensor)
        return (out.float() if out.is_floating_point() else out).cpu().numpy()


def default_workers(model: APCodec) -> int:
    """Batches computed at once: one per intra-op thread on a CPU, one on a GPU."""
    if next(model.parameters()).device.type != "cpu":
        return 1
    return max(1, torch.get_num_threads())


def _one_thread() -> None:
    """Start of a batch thread: it computes with one intra-op thread. torch's OpenMP count
    is kept per thread, so this leaves the caller's thread as it was. A thread takes the
    process-wide count when it first asks for one (`get_num_threads`, or its first
    parallel operation): asking first keeps that from undoing the 1 later, once the caller
    has its own count back."""
    torch.get_num_threads()
    torch.set_num_threads(1)


_Meta = TypeVar("_Meta")


def run_batches(fn: Callable[[np.ndarray], np.ndarray], batches: Iterable[tuple[_Meta, np.ndarray]],
                workers: int = 1) -> Iterator[tuple[_Meta, np.ndarray]]:
    """Apply `fn` to each (meta, array) of `batches`; yield (meta, result) in input order.

    With `workers > 1` up to `workers` batches are computed at once on as many threads, and
    the next batch is gathered (file reading, resampling, bit-unpacking) while they run.
    Only `workers + 1` batches are ever held, so memory stays flat in the signal's length.
    """
    if workers <= 1:
        for meta, batch in batches:
            yield meta, fn(batch)
        return
    threads = torch.get_num_threads()  # the caller's, as it finds it at every step
    with concurrent.futures.ThreadPoolExecutor(workers, "apcodec-batch",
                                               initializer=_one_thread) as pool:
        pending: collections.deque[tuple[Any, concurrent.futures.Future]] = collections.deque()
        try:
            for meta, batch in batches:
                pending.append((meta, pool.submit(fn, batch)))
                if len(pending) > workers:
                    meta, future = pending.popleft()
                    yield _restored(threads, meta, future.result())
            while pending:
                meta, future = pending.popleft()
                yield _restored(threads, meta, future.result())
        finally:  # a consumer that stops early: drop what has not started
            for _, future in pending:
                future.cancel()


def _restored(threads: int, meta: _Meta, result: np.ndarray) -> tuple[_Meta, np.ndarray]:
    """(meta, result), once the process-wide thread count, which a starting batch thread
    set to 1 for itself, is the caller's again (threads started later take it)."""
    torch.set_num_threads(threads)
    return meta, result


class LocalRunner:
    """Forward passes in this process's threads (a `base.Runner`).

    Args:
        model: The codec (eval mode).
        bf16: Run the passes under bf16 autocast.
        workers: Batches computed at once (default: `default_workers(model)` at each
            `map`, so a later `torch.set_num_threads` counts).
    """

    def __init__(self, model: APCodec, bf16: bool = False, workers: int | None = None) -> None:
        self.model = model
        self.bf16 = bf16
        self.workers = workers

    def map(self, method: str, batches: Iterable[tuple[_Meta, np.ndarray]]
            ) -> Iterator[tuple[_Meta, np.ndarray]]:
        fn = functools.partial(run_model, self.model, method, bf16=self.bf16)
        workers = default_workers(self.model) if self.workers is None else self.workers
        return run_batches(fn, batches, workers)
