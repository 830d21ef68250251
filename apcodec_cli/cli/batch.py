"""Running the jobs of a batch: skipping, refusing, converting, summaries.

No torch and no model here: `run_jobs` hands each `Job` (see `plan.py`) to a converter
function, in this process or in a pool of worker processes, collecting failures instead
of stopping at the first one.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
import traceback
from typing import Any, Callable, Iterable, Sequence, TypeVar

from . import interrupt
from .plan import Job

C = TypeVar("C")  # what a converter needs besides the job (the CLI's: its `Codecs`)


@dataclasses.dataclass
class Summary:
    """How a batch went."""

    done: list[Job] = dataclasses.field(default_factory=list)
    skipped: list[Job] = dataclasses.field(default_factory=list)
    failed: list[tuple[Job, str]] = dataclasses.field(default_factory=list)


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


def select_jobs(jobs: Sequence[Job], force: bool, summary: Summary) -> list[Job]:
    """The jobs to run: jobs whose targets collide, or that would overwrite their input,
    fail (even with `force`); existing targets are skipped unless `force`. Both are
    recorded in `summary`."""
    collisions = find_collisions(jobs)
    todo = []
    for job in jobs:
        clash = collisions.get(os.path.normpath(job.target))
        if clash:
            others = ", ".join(j.source for j in clash if j is not job)
            summary.failed.append((job, f"{job.target} would also be written from {others}"))
        elif same_file(job):
            summary.failed.append((job, f"{job.target} is the input itself"))
        elif not force and job.target != "-" and os.path.exists(job.target):
            summary.skipped.append(job)
        else:
            todo.append(job)
    return todo


def record(summary: Summary, job: Job, error: str | None,
           on_done: Callable[[Job], None] | None = None) -> None:
    """Note how a job went (`error`: None on success) and tell `on_done`."""
    if error is None:
        summary.done.append(job)
    else:
        summary.failed.append((job, error))
    if on_done:
        on_done(job)


def run_jobs(jobs: Sequence[Job], convert: Callable[[C, Job], None], context: C, *,
             force: bool, n_jobs: int, prepare: Callable[..., C] | None = None,
             args: tuple = (), threads: int = 0,
             on_done: Callable[[Job], None] | None = None) -> Summary:
    """Convert every job with `convert(context, job)`, skipping existing targets unless
    `force`; never stop on a failure.

    With `n_jobs > 1` the jobs run in spawned worker processes instead: each one sets
    `threads` torch threads (0: torch's default) and makes its own context with
    `prepare(*args)` when it starts (`convert` and `prepare` must be picklable: module-level
    functions, classes, partials of them). A Ctrl-C or SIGTERM stops them at once (see
    `interrupt.py`) and goes on to the caller.
    """
    summary = Summary()
    todo = select_jobs(jobs, force, summary)
    finish = functools.partial(record, summary, on_done=on_done)

    if n_jobs <= 1 or len(todo) <= 1:
        for job in todo:
            finish(job, attempt(functools.partial(convert, context), job))
        return summary
    with interrupt.process_pool(n_jobs, prepare, args, threads) as pool:
        with interrupt.sigint_deferred():
            futures = {pool.submit(interrupt.in_worker, _attempt_with, convert, job): job
                       for job in todo}
        for future in concurrent.futures.as_completed(futures):
            finish(futures[future], future.result())
    return summary


def _attempt_with(context: C, convert: Callable[[C, Job], None], job: Job) -> str | None:
    """`attempt` in a worker, with the context its `prepare` made."""
    return attempt(functools.partial(convert, context), job)


def convert_files(jobs: Sequence[Job], convert: Callable[..., None], codec: Any, *,
                  force: bool, rows: int, files: int | None = None,
                  on_done: Callable[[Job], None] | None = None) -> Summary:
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
        on_done: Called in this thread with each job that finished.
    """
    from ..engine.shared import SharedPasses  # torch: only for the folders that share passes

    summary = Summary()
    todo = select_jobs(jobs, force, summary)
    passes = SharedPasses(codec.model, rows, bf16=codec.bf16)
    shared = codec.with_runner(passes)
    passes.run(todo, lambda job: attempt(functools.partial(convert, shared=shared), job),
               files or rows, lambda job, error: record(summary, job, error, on_done))
    return summary


def attempt(convert: Callable[[Job], None], job: Job) -> str | None:
    """Run one conversion; its error as one line, or None on success."""
    try:
        convert(job)
    except Exception as exc:  # one bad file must not stop the batch
        if os.environ.get("APCODEC_DEBUG"):
            traceback.print_exc()
        return describe(exc)
    return None


def describe(exc: BaseException) -> str:
    """One-line description of an exception for users (no traceback)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:  # "No space left on device: out.wav"
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return text
