"""Planning and running conversions of many files: folders, sharding, skipping, summaries.

No torch and no model here: a `Job` is a pair of paths, and `run_jobs` hands each one to a
converter function, in this process or in a pool of worker processes, collecting failures
instead of stopping at the first one.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
import signal
import traceback
import zlib
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

import soundfile as sf

from ..errors import ApcodecError
from . import interrupt

#: Extensions taken as audio when encoding a folder (what libsndfile reads, plus aliases).
AUDIO_EXTENSIONS = frozenset(
    {f".{ext.lower()}" for ext in sf.available_formats()} | {".opus", ".oga", ".aif", ".wave"}
)
APC_EXTENSION = ".apc"
C = TypeVar("C")  # what a converter needs besides the job (the CLI's: its `Codecs`)


@dataclasses.dataclass(frozen=True)
class Job:
    """One conversion: `source` to `target` ('-' is stdin/stdout)."""

    source: str
    target: str


@dataclasses.dataclass
class Summary:
    """How a batch went."""

    done: list[Job] = dataclasses.field(default_factory=list)
    skipped: list[Job] = dataclasses.field(default_factory=list)
    failed: list[tuple[Job, str]] = dataclasses.field(default_factory=list)


class PlanError(ApcodecError):
    """The command line names inputs and outputs that cannot be paired."""


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N) with 1 <= K <= N."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise PlanError(f"--shard takes K/N, e.g. 2/8, not {text!r}") from None
    if not 1 <= k <= n:
        raise PlanError(f"--shard K/N needs 1 <= K <= N, got {text!r}")
    return k, n


def in_shard(relative: str, shard: tuple[int, int]) -> bool:
    """Whether an output belongs to shard K of N: a stable hash of its path relative to the
    output folder.

    The same output lands in the same shard on every machine, whatever else the tree holds;
    inputs that would write the same output (`a.wav` and `a.flac` to `a.apc`) land in the
    same shard, so their collision is found there as in an unsharded run.
    """
    k, n = shard
    return zlib.crc32(relative.encode("utf-8")) % n == k - 1


@dataclasses.dataclass(frozen=True)
class Skipped:
    """An entry of an input folder that is not converted, and why (see `describe_skipped`)."""

    path: str
    reason: str  # "dangling symlink", "symlinked folder", "not a regular file", "format"


@dataclasses.dataclass
class Plan:
    """The jobs of a command line, and what its folders hold that they leave out."""

    jobs: list[Job]
    skipped: list[Skipped] = dataclasses.field(default_factory=list)


def scan(root: Path, extensions: frozenset[str]) -> tuple[list[Path], list[Skipped]]:
    """The files under `root` with `extensions`, sorted, and the entries left out.

    Symlinked files are followed; symlinked folders are not (they could loop, or mirror
    a tree twice); hidden files are ignored silently.
    """
    found, skipped = [], []
    for folder, dirs, files in os.walk(root):  # lists symlinked folders without entering
        base = Path(folder)
        skipped += [Skipped(str(base / d), "symlinked folder") for d in sorted(dirs)
                    if (base / d).is_symlink()]
        for name in files:
            path = base / name
            if name.startswith("."):
                continue
            if not path.exists():
                skipped.append(Skipped(str(path), "dangling symlink"))
            elif not path.is_file():
                skipped.append(Skipped(str(path), "not a regular file"))
            elif path.suffix.lower() not in extensions:
                skipped.append(Skipped(str(path), "format"))
            else:
                found.append(path)
    return sorted(found), skipped


def describe_skipped(skipped: Sequence[Skipped], shown: int = 5) -> list[str]:
    """One line per reason: how many entries a folder scan left out, and which."""
    lines = []
    kinds = {"dangling symlink": "dangling symlinks", "symlinked folder":
             "symlinked folders (not followed)", "not a regular file": "special files"}
    for reason, label in kinds.items():
        paths = [s.path for s in skipped if s.reason == reason]
        if paths:
            more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
            lines.append(f"skipped {len(paths)} {label}: {', '.join(paths[:shown])}{more}")
    by_ext: dict[str, int] = {}
    for s in skipped:
        if s.reason == "format":
            ext = Path(s.path).suffix.lower() or "(no extension)"
            by_ext[ext] = by_ext.get(ext, 0) + 1
    if by_ext:
        counts = ", ".join(f"{ext} ({n})" for ext, n in sorted(by_ext.items()))
        lines.append(f"skipped {sum(by_ext.values())} files of formats not converted here: "
                     f"{counts}")
    return lines


def plan_jobs(sources: Sequence[str], output: str, extensions: frozenset[str], new_suffix: str,
              shard: tuple[int, int] | None = None) -> Plan:
    """Pair inputs with outputs the way `cp` does.

    One file and a path that is not a folder (and does not end in '/'): that path.
    Otherwise `output` is a folder (created later if missing): a file goes to
    `output/<name><new_suffix>`, and a folder is mirrored recursively (`a/b.wav` becomes
    `output/a/b.apc`) over files with `extensions`.
    """
    out = Path(output)
    missing = [s for s in sources if s != "-" and not Path(s).exists()]
    if missing:
        raise PlanError(f"no such file or folder: {missing[0]}")
    folder_named = output.endswith(("/", os.sep)) or out.is_dir()
    if len(sources) == 1 and not Path(sources[0]).is_dir() and not folder_named:
        return Plan([Job(sources[0], output)])
    if output == "-" or "-" in sources:
        raise PlanError("'-' (stdin/stdout) works with a single input and a single output")
    if out.exists() and not out.is_dir():
        raise PlanError(f"{output} is not a folder, but several inputs or a folder were given")
    plan = Plan([])
    for source in map(Path, sources):
        if source.is_dir():
            files, skipped = scan(source, extensions)
            plan.skipped += skipped
            plan.jobs += [Job(str(p), str(out / p.relative_to(source).with_suffix(new_suffix)))
                          for p in files]
        else:
            plan.jobs.append(Job(str(source), str(out / source.with_suffix(new_suffix).name)))
    if shard is not None:
        plan.jobs = [j for j in plan.jobs
                     if in_shard(Path(j.target).relative_to(out).as_posix(), shard)]
    return plan


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
    except BrokenPipeError:
        if job.target != "-":
            return "Broken pipe"
        # stdout's reader has gone (`... - | head`): stop quietly, as `cat` does.
        raise interrupt.Interrupted(signal.SIGPIPE) from None
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
