"""What `apcodec encode` and `apcodec decode` do once click has parsed their options.

`encode_one` and `decode_one` convert one job with a process's codecs (`codecs.py`); `run`
plans a command's jobs, refuses command lines that cannot work (exit 2), runs the jobs and
reports on stderr (`report.py`).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable

import click

from ..errors import describe
from ..format.audio import AUDIO_EXTENSIONS
from .batch import Outcome, Summary, convert_files, run_jobs, same_file
from .codecs import Codecs, Loading
from .plan import APC_EXTENSION, Job, PlanError, describe_skipped, plan_jobs
from .report import duration, fail, report, warn
from .shard import ShardError, parse_shard
from .summary import recording

#: Torch threads of a real-time pipe (unless $OMP_NUM_THREADS says otherwise): the
#: streamable model's step is a few small matrix products per 6.67 ms frame, which more
#: threads only slow down, and a pipe runs an encoder and a decoder side by side. With one
#: per core each, a 3 s pipe took 50-72 s on a busy 2-core machine (docs/streaming.md).
LIVE_THREADS = 1
PACKET = 15  # code frames per live record by default: 100 ms


@dataclasses.dataclass(frozen=True)
class Options:
    """Options of one command invocation, shared by every file it converts (and sent to
    `--jobs` workers). The defaults are the command line's."""

    command: str  # "encode" or "decode"
    weights: str | None = None
    device: str = "auto"
    precision: str | None = None  # None: $APCODEC_PRECISION, else auto
    force: bool = False
    jobs: int = 1
    shard: str | None = None  # "K/N" or "auto"
    summary: str | None = None  # the JSON-lines summary to append to
    quiet: bool = False
    streaming: bool = False
    mono: bool = False  # encode only
    packet: int | None = None  # encode only: frames per live record (None: PACKET)
    original_rate: bool = False  # decode only
    float32: bool = False  # decode only: 32-bit float samples
    start: float = 0.0  # decode only, seconds
    duration: float | None = None  # decode only, seconds
    skip_damaged: bool = False  # decode only: silence for damaged chunks instead of failing


def _open_input(path: str) -> str | BinaryIO:
    return io.BytesIO(sys.stdin.buffer.read()) if path == "-" else path


class _Stdout:
    """stdout as a stream written front to back: it cannot seek, so writers do not try;
    its errors name it ("Broken pipe: stdout")."""

    def write(self, data: bytes) -> int:
        return self._named(sys.stdout.buffer.write, data)

    def flush(self) -> None:
        self._named(sys.stdout.buffer.flush)

    @staticmethod
    def _named(call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, "stdout") from None

    def seekable(self) -> bool:
        return False


def _write_output(path: str, write: Callable[[Any], Any]) -> Any:
    """Run `write(fileobj)` into `path` atomically, or into stdout for '-' as it is
    written (both formats are written front to back); a failed write to stdout raises."""
    from ..format.atomic import atomic_write

    if path == "-":
        stdout = _Stdout()
        result = write(stdout)
        stdout.flush()
        return result
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        return write(f)


def _live(opts: Options, job: Job) -> bool:
    """Whether a job runs as a real-time pipe: --streaming with stdin or stdout."""
    return opts.streaming and "-" in (job.source, job.target)


def encode_one(opts: Options, codecs: Codecs, job: Job,
               progress: Callable[[float], None] | None = None, shared: Any = None) -> None:
    """Encode one job's audio into a `.apc` file (or a live stream); `shared` as for
    `Codecs.get`."""
    found = codecs.get(opts.streaming, shared)
    if _live(opts, job):
        from ..live import encode_pipe
        return encode_pipe(found, job.source, job.target, opts.mono, opts.packet or PACKET,
                           progress)
    source = _open_input(job.source)
    _write_output(job.target, lambda f: found.encode_file(source, f, mono=opts.mono,
                                                           progress=progress))


def decode_one(opts: Options, codecs: Codecs, job: Job,
               progress: Callable[[float], None] | None = None, shared: Any = None) -> None:
    """Decode one job's `.apc` file into audio, in the format its output's name says;
    `shared` as for `Codecs.get`."""
    from ..format.audio import output_format

    fmt, subtype = output_format(job.target, opts.float32)
    if _live(opts, job):
        from ..live import decode_pipe

        def damaged(label: str) -> None:
            warn(f"{job.source}: {label} is damaged: wrote silence there", opts.quiet)
        return decode_pipe(codecs.for_header, job.source, job.target, opts.float32, progress,
                           damaged if opts.skip_damaged else None)
    source = _open_input(job.source)
    found = codecs.for_file(source, shared)
    result = _write_output(job.target, lambda f: found.decode_file(
        source, f, original_rate=opts.original_rate, start=opts.start, duration=opts.duration,
        subtype=subtype, format=fmt, progress=progress, skip_damaged=opts.skip_damaged))
    for label in result.damaged:
        warn(f"{job.source}: {label} is damaged: wrote silence there", opts.quiet)
    if result.clipped:
        warn(f"{job.target}: {result.clipped} samples clipped to full scale "
             f"(try --float to keep them)", opts.quiet)


def run(opts: Options, sources: tuple[str, ...], output: str) -> None:
    """Plan, check and run a conversion command; exit non-zero if anything failed."""
    from ..format.atomic import remove_stale

    encode = opts.command == "encode"
    try:
        shard = parse_shard(opts.shard) if opts.shard else None
        plan = plan_jobs(sources, output,
                         AUDIO_EXTENSIONS if encode else frozenset({APC_EXTENSION}),
                         APC_EXTENSION if encode else ".wav", shard)
    except (PlanError, ShardError) as exc:
        raise click.UsageError(str(exc)) from None
    jobs = plan.jobs
    single = len(jobs) == 1 and jobs[0].target == output
    if not single:
        _check_settings()
    if opts.jobs > 1 and len(jobs) > 1:
        from ..runtime import usable_workers

        workers, why = usable_workers(min(opts.jobs, len(jobs)))
        if why:
            warn(why, opts.quiet)
        opts = dataclasses.replace(opts, jobs=workers)
    if opts.packet is not None and not (single and _live(opts, jobs[0])):
        raise click.UsageError("--packet sets the records of a real-time pipe: it needs "
                               "--streaming and '-' as input or output")
    if single:
        _check_single(opts, jobs[0])
        if _live(opts, jobs[0]) and not os.environ.get("OMP_NUM_THREADS"):
            from ..runtime import set_threads

            set_threads(LIVE_THREADS)
    _check_device(opts.device)
    for line in describe_skipped(plan.skipped):
        warn(line, opts.quiet)
    if not jobs:
        kind = "audio" if encode else ".apc"
        where = f" in shard {opts.shard}" if opts.shard else ""
        warn(f"no {kind} files found{where} in {', '.join(sources)}: nothing to convert",
             opts.quiet)
    remove_stale(job.target for job in jobs if job.target != "-")
    codecs = Codecs(Loading(opts.weights, opts.device, opts.quiet, opts.precision))
    with recording(opts.summary, opts.command, output, shard, jobs) as note:
        _load_first(opts, codecs, jobs)
        start = time.monotonic()
        summary = _run_single(opts, codecs, jobs[0], note) if single else \
            _run_batch(opts, codecs, jobs, note)
    report(opts.command, opts.quiet, summary, single, time.monotonic() - start)


def _load_first(opts: Options, codecs: Codecs, jobs: list[Job]) -> None:
    """Load the codec that the first job needs now, so that a missing model fails once, up
    front (the summary, if any, then shows every job planned and none finished)."""
    try:
        kind = _first_kind(opts, jobs)
        if kind is not None:
            codecs.get(kind)
    except Exception as exc:
        fail(describe(exc))


def _progress_bar(opts: Options, **kwargs: Any) -> Any:
    """A tqdm bar on stderr, drawn only on a terminal and without --quiet."""
    from tqdm import tqdm

    return tqdm(file=sys.stderr, disable=opts.quiet or not sys.stderr.isatty(), **kwargs)


def _run_single(opts: Options, codecs: Codecs, job: Job, note: Callable[[Outcome], None]
                ) -> Summary:
    convert = encode_one if opts.command == "encode" else decode_one
    ranged = getattr(opts, "start", 0) or getattr(opts, "duration", None) is not None
    total = None if ranged or job.source == "-" else duration(job.source)
    with _progress_bar(opts, desc=Path(job.source).name, unit="s", total=total,
                       bar_format="{desc}: {n:.1f} s [{elapsed}]" if total is None else
                       "{l_bar}{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]") as bar:
        return run_jobs([job], functools.partial(convert, opts, progress=bar.update), codecs,
                        force=True, n_jobs=1, on_done=note)


def _run_batch(opts: Options, codecs: Codecs, jobs: list[Job],
               note: Callable[[Outcome], None]) -> Summary:
    convert = functools.partial(encode_one if opts.command == "encode" else decode_one, opts)
    with _progress_bar(opts, total=len(jobs), unit="file") as bar:
        def on_done(outcome: Outcome) -> None:
            note(outcome)
            bar.update()
        rows = _shared_rows(opts, codecs)
        if rows:  # one process, forward passes shared between files (a GPU's way)
            return convert_files(jobs, functools.partial(convert, codecs), codecs.full,
                                 force=opts.force, rows=rows, on_done=on_done)
        # --jobs workers: quiet codecs of their own, and their share of the CPU cores.
        return run_jobs(
            jobs, convert, codecs, force=opts.force, n_jobs=opts.jobs, prepare=Codecs,
            args=(dataclasses.replace(codecs.loading, quiet=True),),
            threads=max(1, (os.cpu_count() or 1) // opts.jobs), on_done=on_done)


def _check_single(opts: Options, job: Job) -> None:
    """Refuse, as usage errors, single conversions that cannot do what was asked."""
    target = job.target
    if same_file(job):
        raise click.UsageError(f"{target} is the input itself: name another output")
    if opts.command == "encode":
        if target != "-" and not target.lower().endswith(APC_EXTENSION):
            raise click.UsageError(f"{target}: encode writes a .apc bitstream, not audio; "
                                   "name the output *.apc (or '-' for stdout)")
    else:
        _check_decode_target(opts, job)
    if target != "-" and os.path.exists(target) and not opts.force:
        fail(f"{target} already exists (use --force to overwrite)")


def _check_decode_target(opts: Options, job: Job) -> None:
    from ..format.audio import output_format

    try:
        fmt, _ = output_format(job.target, opts.float32)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if _live(opts, job):
        if opts.original_rate or opts.start or opts.duration is not None or fmt != "WAV":
            raise click.UsageError(
                "a real-time pipe writes 48 kHz WAV from the start: drop --original-rate, "
                "--start, --duration and non-WAV outputs, or decode without --streaming")
        return
    if opts.start and job.source != "-":
        length = duration(job.source)
        if length is not None and opts.start >= length:
            raise click.UsageError(f"--start {opts.start:g} is at or past the end of "
                                   f"{job.source} ({length:.3f} s)")


def _check_settings() -> None:
    """A batch's environment settings that cannot be read are usage errors."""
    from ..engine.shared import SettingError, rows_setting

    try:
        rows_setting()
    except SettingError as exc:
        raise click.UsageError(str(exc)) from None


def _check_device(name: str) -> None:
    """A --device that names no device here is a usage error."""
    from ..runtime import DeviceError, resolve_device

    try:
        resolve_device(name)
    except DeviceError as exc:
        raise click.UsageError(str(exc)) from None


def _shared_rows(opts: Options, codecs: Codecs) -> int:
    """Rows per forward pass shared between a folder's files (see engine/shared.py), or 0 to
    convert them one by one: shared with the full model on CUDA and --jobs 1."""
    full = codecs.full
    if opts.jobs > 1 or full is None:  # --jobs asks for processes; -s, or streamable
        return 0
    from ..engine.shared import shared_rows
    return shared_rows(full)


def _first_kind(opts: Options, jobs: list[Job]) -> bool | None:
    """Which codec to load before converting (so a missing model fails once, up front):
    encode's by --streaming; decode's by the first file's header, when it can be read."""
    if opts.command == "encode":
        return opts.streaming
    if not jobs or jobs[0].source == "-":
        return None
    try:
        from ..format.bitstream import read_header
        with open(jobs[0].source, "rb") as f:
            return read_header(f).streamable
    except Exception:  # the conversion reports unreadable files
        return None


