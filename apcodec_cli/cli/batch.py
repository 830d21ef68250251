"""Running the jobs of a batch: skipping, refusing, converting, timing, summaries.

No torch and no model here: `run_jobs` hands each `Job` (see `plan.py`) to a converter
function, in this process or in a pool of worker processes, collecting failures instead
of stopping at the first one, and tells the caller how each job ended (an `Outcome`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
import signal
import time
import traceback
from typing import Any, Callable, Iterable, Sequence, TypeVar

from .. import runtime
from ..errors import describe
from .plan import Job

C = TypeVar("C")  # what a converter needs besides the job (the CLI's: its `Codecs`)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How one job ended: "done", "skipped" (its target exists) or "failed" (`error`, one
    line); `seconds` it took to convert (0 when it did not run)."""

    job: Job
    status: str
    error: str | None = None
    seconds: float = 0.0

    @classmethod
    def of(cls, job: Job, error: str | None, seconds: float) -> Outcome:
        """The outcome of a job that ran: done, or failed with `error`."""
        return cls(job, "done" if error is None else "failed", error, seconds)


@dataclasses.dataclass
class Summary:
    """How a batch went."""

    done: list[Job] = dataclasses.field(default_factory=list)
    skipped: list[Job] = dataclasses.field(default_factory=list)
    failed: list[tuple[Job, str]] = dataclasses.field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        if outcome.status == "done":
            self.done.append(outcome.job)
        elif outcome.status == "skipped":
            self.skipped.append(outcome.job)
        else:
            self.failed.append((outcome.job, outcome.error or "failed"))

def find_collisions(jobs: Iterable[Job]) -> dict[str, list[Job]]:
    """Targets that more than one job would write (e.g. `a.wav` and `a.flac` to `a.apc`)."""
    by_target: dict[str, list[Job]] = {}
    for job in jobs:
        by_target.setdefault(os.path.normpath(job.target), []).append(job)
    return {t: js for t, js in by_target.items() if len(js) > 1}


def same_file(job: Job) -> bool:
    """Whether a job would write over its own input (the same path, or a link to it)."""
    if "-" in (job.source, job.target):
        return False
    if os.path.abspath(job.source) == os.path.abspath(job.target):
        return True
    try:
        return os.path.samefile(job.source, job.target)
    except OSError:  # the target does not exist yet
        return False


def select_jobs(jobs: Sequence[Job], force: bool, finish: Callable[[Outcome], None]
                ) -> list[Job]:
    """The jobs to run: jobs whose targets collide, or that would overwrite their input,
    fail (even with `force`); existing targets are skipped unless `force`. Both are
    told to `finish` at once."""
    collisions = find_collisions(jobs)
    todo = []
    for job in jobs:
        clash = collisions.get(os.path.normpath(job.target))
        if clash:
            others = ", ".join(j.source for j in clash if j is not job)
            finish(Outcome(job, "failed", f"{job.target} would also be written from {others}"))
        elif same_file(job):
            finish(Outcome(job, "failed", f"{job.target} is the input itself"))
        elif not force and job.target != "-" and os.path.exists(job.target):
            finish(Outcome(job, "skipped"))
        else:
            todo.append(job)
    return todo


def record(summary: Summary, outcome: Outcome,
           on_done: Callable[[Outcome], None] | None = None) -> None:
    """Note how a job went in `summary` and tell `on_done`."""
    summary.add(outcome)
    if on_done:
        on_done(outcome)


def run_jobs(jobs: Sequence[Job], convert: Callable[[C, Job], None], context: C, *,
             force: bool, n_jobs: int, prepare: Callable[..., C] | None = None,
             args: tuple = (), threads: int = 0,
             on_done: Callable[[Outcome], None] | None = None) -> Summary:
    """Convert every job with `convert(context, job)`, skipping existing targets unless
    `force`; never stop on a failure. `on_done` hears of every job as it ends (skipped
    and refused ones first).

    With `n_jobs > 1` the jobs run in spawned worker processes instead: each one sets
    `threads` torch threads (0: torch's default) and makes its own context with
    `prepare(*args)` when it starts (`convert` and `prepare` must be picklable: module-level
    functions, classes, partials of them). A Ctrl-C or SIGTERM stops them at once (see
    `runtime.py`) and goes on to the caller.
    """
    summary = Summary()
    finish = functools.partial(record, summary, on_done=on_done)
    todo = select_jobs(jobs, force, finish)

    if n_jobs <= 1 or len(todo) <= 1:
        for job in todo:
            finish(timed(functools.partial(convert, context), job))
        return summary
    with runtime.process_pool(n_jobs, prepare, args, threads) as pool:
        with runtime.sigint_deferred():
            futures = [pool.submit(runtime.in_worker, _timed_with, convert, job)
                       for job in todo]
        for future in concurrent.futures.as_completed(futures):
            finish(future.result())
    return summary


def _timed_with(context: C, convert: Callable[[C, Job], None], job: Job) -> Outcome:
    """`timed` in a worker, with the context its `prepare` made."""
    return timed(functools.partial(convert, context), job)


def convert_files(jobs: Sequence[Job], convert: Callable[..., None], codec: Any, *,
                  force: bool, rows: int, files: int | None = None,
                  on_done: Callable[[Outcome], None] | None = None) -> Summary:
    """`run_jobs` for one process, with `codec`'s forward passes shared between files
    (see `engine/shared.py`).

    Args:
        jobs: The conversions; existing targets are skipped unless `force`.
        convert: `convert(job, shared=...)` converts one job, with `shared` for the work of
            `codec`'s model: a codec of the same weights whose runner is the shared passes
            (`Codec.with_runner`; `codec` itself is left as it is).
        codec: The full model's `Codec`.
        rows: Most rows (windows x channels) per pass; one file's batch may exceed it alone.
        files: Files converted at once (default: `rows`).
        on_done: Called in this thread with the outcome of each job as it ends.
    """
    from ..engine.shared import SharedPasses  # torch: only for the folders that share passes

    summary = Summary()
    finish = functools.partial(record, summary, on_done=on_done)
    todo = select_jobs(jobs, force, finish)
    passes = SharedPasses(codec.model, rows, bf16=codec.bf16)
    shared = codec.with_runner(passes)
    seconds: dict[Job, float] = {}  # set in a file's thread before the passes hear of it

    def convert_one(job: Job) -> str | None:
        outcome = timed(functools.partial(convert, shared=shared), job)
        seconds[job] = outcome.seconds
        return outcome.error

    passes.run(todo, convert_one, files or rows,
               lambda job, error: finish(Outcome.of(job, error, seconds.pop(job, 0.0))))
    return summary


def timed(convert: Callable[[Job], None], job: Job) -> Outcome:
    """Run one conversion and time it; a failure becomes its one-line error."""
    start = time.monotonic()
    error = attempt(convert, job)
    return Outcome.of(job, error, time.monotonic() - start)


def attempt(convert: Callable[[Job], None], job: Job) -> str | None:
    """Run one conversion; its error as one line, or None on success."""
    try:
        convert(job)
    except BrokenPipeError as exc:
        if job.target != "-":
            return describe(exc)
        # stdout's reader has gone (`... - | head`): stop quietly, as `cat` does.
        raise runtime.Interrupted(signal.SIGPIPE) from None
    except Exception as exc:  # one bad file must not stop the batch
        if os.environ.get("APCODEC_DEBUG"):
            traceback.print_exc()
        return describe(exc)
    return None
