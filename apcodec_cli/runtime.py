"""How a process runs: device, precision, threads, stop signals and worker processes.

The one home of runtime policy, below every layer (no model, no files): the device a
model runs on (`resolve_device`), whether the full model runs in bf16
(`resolve_precision`), the torch thread count (`set_threads`), and the processes that
share a batch. torch is imported by the functions that need it, never at import.

Stopping cleanly on Ctrl-C, SIGTERM or a dead parent, in a command and in its workers: in
the command's process, Ctrl-C raises KeyboardInterrupt and, inside `sigterm_raises`,
SIGTERM raises `Interrupted`: both unwind through `format/atomic.atomic_write`, which
removes the partial output, and the command exits with 128 + the signal's number (130,
143; see `exit_status`).

`--jobs N` workers come from `process_pool`:

- spawned, never forked: the parent has usually loaded a codec, which on a GPU initialises
  CUDA, and a forked child cannot use CUDA ("Cannot re-initialize CUDA in forked
  subprocess"); forking a process that runs threads (torch's) is unsafe anyway;
- a worker ignores SIGINT: a terminal's Ctrl-C reaches the whole process group, and only
  the parent decides what happens (otherwise each worker drops its current file and takes
  the next one from the queue);
- on SIGTERM, or as soon as its parent is gone (SIGKILL included: a thread watches the
  parent's process id), a worker removes its partial outputs and exits at once;
- a parent that stops early cancels the queued jobs, sends SIGTERM to every worker and
  waits for them (a second Ctrl-C meanwhile is ignored: it used to deadlock) before exiting;
- a worker sets its torch threads and makes its context (its codecs, say) once, when it
  starts; tasks submitted through `in_worker` receive that context.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar

from . import machine
from .errors import ApcodecError
from .units import counted

if TYPE_CHECKING:
    import torch

#: Seconds between a worker's checks that its parent still runs.
PARENT_POLL = 0.2
#: Seconds a stopping parent waits for a worker to exit after SIGTERM, before SIGKILL.
GRACE = 5.0

T = TypeVar("T")

#: What `process_pool`'s `prepare` returned in this worker process (None in any other).
#: A pool runs each task as a pickled function call, so what a worker keeps from one task
#: to the next can only live in its module state: this one slot, set once when it starts.
_context: Any = None
#: What `_exit_now` runs before it exits (`at_exit_now`).
_CLEANUPS: list[Callable[[], None]] = []


class Interrupted(BaseException):
    """A stop signal (SIGTERM) arrived: unwinds like KeyboardInterrupt, no handler catches it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def exit_status(stop: BaseException) -> int:
    """The exit status of a command stopped by `stop`: 128 + signal number (Ctrl-C: 130)."""
    return 128 + (stop.signum if isinstance(stop, Interrupted) else signal.SIGINT)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """While active, SIGTERM raises `Interrupted` in the main thread (elsewhere: no change)."""
    if not _in_main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C back until the block ends (it is delivered then).

    Around `submit`: the workers it spawns inherit the blocked signal, so a Ctrl-C cannot
    reach them while they start up (before they ignore it), only the parent.
    """
    if not (_in_main_thread() and hasattr(signal, "pthread_sigmask")):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def process_pool(workers: int, prepare: Callable[..., Any] | None = None, args: tuple = (),
                 threads: int = 0) -> Iterator[concurrent.futures.ProcessPoolExecutor]:
    """A pool of `workers` spawned processes. Each, when it starts, sets `threads` torch
    threads (0: torch's default) and keeps `prepare(*args)` as its context for `in_worker`.

    Submit inside `sigint_deferred`. If the block raises (Ctrl-C, SIGTERM, an error), the
    queued jobs are cancelled and the workers stopped before the exception goes on.
    """
    pool = concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker, initargs=(os.getpid(), threads, prepare, args))
    try:
        yield pool
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown(wait=True)


#: Bytes of memory a `--jobs` worker is counted for: one conversion with the shipped
#: model peaked at 0.46 GB resident (30 s of stereo, `/usr/bin/time -v`, 2026-12-06).
WORKER_MEMORY = 1 << 30


def usable_workers(asked: int) -> tuple[int, str | None]:
    """How many worker processes to start for `--jobs asked`: no more than this process
    may use CPU cores, nor than the available memory holds at `WORKER_MEMORY` each; and
    why fewer, in words (None when all `asked` fit)."""
    cores = machine.usable_cores()
    memory = machine.available_memory()
    by_memory = max(1, memory // WORKER_MEMORY) if memory is not None else asked
    usable = max(1, min(asked, cores, by_memory))
    if usable == asked:
        return usable, None
    held = f", {memory / 1e9:.1f} GB of memory available" if memory is not None else ""
    return usable, (f"--jobs {asked}: running {counted(usable, 'worker')} "
                    f"({counted(cores, 'CPU core')}{held}; "
                    f"about {WORKER_MEMORY / 2**30:.0f} GB each)")


def _stop(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """Cancel what has not started; SIGTERM every worker; wait for them (SIGKILL late ones).
    Another Ctrl-C or SIGTERM meanwhile is ignored: the stop is already under way."""
    ignoring = _in_main_thread()
    previous = {sig: signal.signal(sig, signal.SIG_IGN)
                for sig in (signal.SIGINT, signal.SIGTERM)} if ignoring else {}
    try:
        # The pool keeps no public list of its processes; `_processes` (pid -> Process)
        # has been there since Python 3.2.
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + GRACE
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def in_worker(task: Callable[..., T], *args: Any) -> T:
    """`task(context, *args)` with this worker's context (what the pool's `prepare` made):
    submit tasks to a `process_pool` as `pool.submit(in_worker, task, ...)`."""
    return task(_context, *args)


def _start_worker(parent: int, threads: int, prepare: Callable[..., Any] | None,
                  args: tuple) -> None:
    """Runs first in every worker: the signal rules above, the threads, the context."""
    global _context
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_now)
    if hasattr(signal, "pthread_sigmask"):  # blocked by `sigint_deferred` in the parent
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    threading.Thread(target=_watch_parent, args=(parent,), name="apcodec-parent-watch",
                     daemon=True).start()
    set_threads(threads)
    _context = prepare(*args) if prepare is not None else None


def at_exit_now(cleanup: Callable[[], None]) -> None:
    """Have `cleanup` run when this process must exit at once (a worker told to stop, or
    whose parent died), once however often it is registered. `format/atomic.py` registers
    the removal of its partial outputs when it first creates one: this layer cannot know
    files."""
    if cleanup not in _CLEANUPS:
        _CLEANUPS.append(cleanup)


def _exit_now(signum: int, frame: Any = None) -> None:
    """Run the registered cleanups (partial outputs) and exit at once, whatever it was
    doing."""
    for cleanup in list(_CLEANUPS):
        cleanup()
    os._exit(128 + signum)


def _watch_parent(parent: int) -> None:
    """A worker's thread: exit when the parent is gone (the worker is then re-parented)."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL)
    _exit_now(signal.SIGTERM)

# ---- device, precision, threads ---------------------------------------------------------------


class DeviceError(ApcodecError):
    """The device asked for does not exist on this machine."""


class PrecisionError(ApcodecError, ValueError):
    """A precision other than auto, fp32 or bf16 was asked for."""


#: Environment variable with the default arithmetic of the full model: auto, fp32 or bf16.
PRECISION_ENV = "APCODEC_PRECISION"
PRECISIONS = ("auto", "fp32", "bf16")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AVX512-BF16 or AMX), per /proc/cpuinfo
    (without them bf16 is emulated); False where there is no /proc/cpuinfo."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_precision(name: str | None, device: "torch.device") -> bool:
    """Whether the full model's passes run in bf16 (autocast; the quantizer stays float32).

    `name` None reads $APCODEC_PRECISION (default auto). 'auto' is bf16 on a CPU with bf16
    instructions, where the model runs about 1.5x faster with no measured loss
    (docs/speed.md), and float32 elsewhere (GPUs included: not measured there).
    """
    name = name or os.environ.get(PRECISION_ENV) or "auto"
    if name not in PRECISIONS:
        raise PrecisionError(f"precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    if name == "auto":
        return device.type == "cpu" and cpu_has_native_bf16()
    return name == "bf16"


def resolve_device(name: str) -> "torch.device":
    """The device named 'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'.

    Raises DeviceError for a CUDA device that this machine does not have.
    """
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"--device {name}: not a device (auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise DeviceError(f"--device {name} was asked for but no CUDA device is available")
        if device.index is not None and device.index >= count:
            raise DeviceError(f"--device {name}: no such CUDA device (this machine has "
                              f"{count}: cuda:0 to cuda:{count - 1})")
    return device


def set_threads(threads: int) -> None:
    """Give torch `threads` intra-op threads in this process; 0 keeps torch's default.

    The one place the package sets the count, once, when a process starts: a command's
    `--threads` (eval, train, ...) in the CLI's process, and in each `--jobs` worker its
    share of the cores (`process_pool`). Only passing changes are made elsewhere, each
    undone on the way out: `engine/runners` gives each of its batch threads one thread
    (the caller's count is the same at every step of its iterator), `bench/floor`
    measures the compute floor at a count.
    """
    if threads:
        import torch

        torch.set_num_threads(threads)
