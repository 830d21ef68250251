"""What `apcodec encode` and `apcodec decode` say on stderr: warnings, one-line failures,
and the closing line of a batch (how many converted, sizes, bitrate and speed)."""

from __future__ import annotations

import os
import sys

import click

from ..units import SAMPLE_RATE, counted
from .batch import Summary
from .plan import APC_EXTENSION, Job

EXIT_FAILED = 1  # some input could not be converted (usage errors exit with 2)


def warn(message: str, quiet: bool) -> None:
    if not quiet:
        click.echo(f"apcodec: warning: {message}", err=True)


def fail(message: str) -> None:
    click.echo(f"apcodec: error: {message}", err=True)
    sys.exit(EXIT_FAILED)


def duration(source: str) -> float | None:
    """Seconds of audio in a source file (audio or a `.apc` file that is not a live
    stream); None when unknown."""
    try:
        if source.endswith(APC_EXTENSION):
            from ..format.bitstream import peek_header
            with open(source, "rb") as f:
                header = peek_header(f)
            return None if header.live else header.duration
        from ..format.audio import probe, resampled_length
        info, rate = probe(source), SAMPLE_RATE  # every preset codes at 48 kHz
        return resampled_length(info.frames, info.sample_rate, rate) / rate
    except Exception:  # the conversion itself reports unreadable inputs
        return None


def report(command: str, quiet: bool, summary: Summary, single: bool, elapsed: float) -> None:
    """The failures, then (for a batch, without --quiet) the counts and totals; exit 1 if
    anything failed."""
    for job, error in summary.failed:
        click.echo(f"apcodec: error: {job.source}: {error}", err=True)
    if not single and not quiet:
        click.echo(f"apcodec: {len(summary.done)} converted, {len(summary.skipped)} skipped "
                   f"(already exist; --force to redo), {len(summary.failed)} failed", err=True)
        if summary.done:
            click.echo(f"apcodec: {_totals(command, summary.done, elapsed)}", err=True)
    if summary.failed:
        sys.exit(EXIT_FAILED)


def _totals(command: str, done: list[Job], elapsed: float) -> str:
    """Sizes, bitrate and speed of the converted files, in one line."""
    seconds = size_in = size_out = 0.0
    for job in done:
        try:
            apc = job.target if command == "encode" else job.source
            size_in += os.path.getsize(job.source)
            size_out += os.path.getsize(job.target)
            seconds += duration(apc) or 0.0
        except OSError:  # moved away meanwhile: counted as far as it goes
            continue
    apc_bytes = size_out if command == "encode" else size_in
    line = f"{counted(len(done), 'file')}, {seconds:.1f} s of audio: {_size(size_in)} in, " \
           f"{_size(size_out)} out"
    if seconds:
        line += f", {apc_bytes * 8 / seconds / 1000:.2f} kbit/s coded"
    line += f"; {elapsed:.1f} s"
    if seconds and elapsed:
        line += f" ({seconds / elapsed:.1f}x real time)"
    return line


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
