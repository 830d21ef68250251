"""`apcodec bench`: speed and memory of encode/decode on this machine, as a markdown table.

Only click is imported at module level (the command is registered with every `apcodec`
run); numpy, torch and the measurements load when the command runs. Without installing the
command: ``python -m apcodec_cli.bench.cli``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import click

EXIT_FAILED = 1


def _seconds(text: str) -> tuple[float, ...]:
    """'10,60,10m,1h' -> (10, 60, 600, 3600)."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        unit = {"s": 1, "m": 60, "h": 3600}.get(part[-1].lower())
        try:
            value = float(part[:-1]) * unit if unit else float(part)
        except ValueError:
            raise click.BadParameter(f"{part!r} is not a duration (e.g. 10, 90s, 10m, 1h)")
        if value <= 0:
            raise click.BadParameter(f"{part!r}: durations must be positive")
        out.append(value)
    if not out:
        raise click.BadParameter("no durations given")
    return tuple(out)


@click.command("bench")
@click.option("-w", "--weights", type=click.Path(exists=True, dir_okay=False),
              help="Weights to measure (default: $APCODEC_WEIGHTS, else the installed ones).")
@click.option("--seconds", "seconds_text", metavar="LIST",
              help="Durations of test audio, comma-separated: 10, 90s, 10m, 1h "
                   "[default: 10,60; --full: 10,60,10m,60m].")
@click.option("--full", is_flag=True, help="10 s, 1 min, 10 min and 60 min of audio.")
@click.option("--threads", "threads_text", metavar="LIST",
              help="CPU thread counts, comma-separated [default: 1 and all cores].")
@click.option("--cuda/--no-cuda", default=None,
              help="Also measure on CUDA [default: when a GPU is present].")
@click.option("--no-opus", is_flag=True, help="Do not time Opus (opusenc/opusdec).")
@click.option("--baseline-seconds", type=click.FloatRange(min=0), default=60.0,
              show_default=True, help="Length of the whole-signal baseline; 0: no baseline.")
@click.option("--baseline-preset", default="apcodec-48k", show_default=True,
              help="Preset of the baseline model (random weights).")
@click.option("--audio", type=click.Path(exists=True, dir_okay=False),
              help="Audio file looped into the test signals [default: samples/speech.flac "
                   "of a checkout, else synthetic tones and noise].")
@click.option("--workdir", type=click.Path(file_okay=False),
              help="Where test files are written (default: a temporary folder).")
@click.option("--json-out", type=click.Path(dir_okay=False), help="Also write the report as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress messages on stderr.")
def bench(weights: str | None, seconds_text: str | None, full: bool, threads_text: str | None,
          cuda: bool | None, no_opus: bool, baseline_seconds: float, baseline_preset: str,
          audio: str | None, workdir: str | None, json_out: str | None, quiet: bool) -> None:
    """Measure encode and decode speed (x real time) and peak memory of whole processes.

    \b
    For each duration: `apcodec encode` and `apcodec decode` as separate processes (start-up
    included) on CPU with each thread count and on CUDA when present, and Opus at 6 kbit/s
    on the same audio; each figure with its efficiency against the compute floor (model
    FLOPs over the matmul throughput measured here). Then the baseline: a whole-signal
    forward pass of the reference model, and how many times faster apcodec is.
    Run it on an otherwise idle machine: the figures are wall-clock times.

    \b
    Examples:
      apcodec bench                     10 s and 60 s, 1 thread and all cores
      apcodec bench --full --json-out speed.json
      apcodec bench --seconds 10m --threads 2 --baseline-seconds 0
    """
    import json

    from .run import FULL_SECONDS, QUICK_SECONDS, Settings, default_source, markdown, measure

    if seconds_text and full:
        raise click.UsageError("--seconds and --full exclude each other")
    seconds = _seconds(seconds_text) if seconds_text else FULL_SECONDS if full else QUICK_SECONDS
    cores = os.cpu_count() or 1
    try:
        threads = tuple(sorted({int(t) for t in threads_text.split(",")})) if threads_text \
            else tuple(sorted({1, cores}))
    except ValueError:
        raise click.BadParameter(f"{threads_text!r}: give thread counts like 1,2",
                                 param_hint="--threads") from None
    if min(threads) < 1:
        raise click.BadParameter("thread counts must be at least 1", param_hint="--threads")
    if cuda is None or cuda:
        import torch

        if cuda and not torch.cuda.is_available():
            raise click.UsageError("--cuda was asked for but no CUDA device is available")
        cuda = torch.cuda.is_available()

    def log(message: str) -> None:
        if not quiet:
            click.echo(f"apcodec bench: {message}", err=True)

    with tempfile.TemporaryDirectory(prefix="apcodec-bench-") as tmp:
        settings = Settings(seconds=seconds, threads=threads, cuda=cuda, weights=weights,
                            opus=not no_opus, baseline_seconds=baseline_seconds or None,
                            baseline_preset=baseline_preset,
                            source=audio or default_source(),
                            workdir=Path(workdir) if workdir else Path(tmp) / "files")
        try:
            report = measure(settings, log)
        except Exception as exc:
            from ..errors import describe

            if os.environ.get("APCODEC_DEBUG"):
                raise
            click.echo(f"apcodec: error: {describe(exc)}", err=True)
            sys.exit(EXIT_FAILED)
    click.echo(markdown(report), nl=False)
    if json_out:
        from ..format.atomic import atomic_write

        with atomic_write(json_out) as f:
            f.write((json.dumps(report, indent=1) + "\n").encode())


if __name__ == "__main__":
    bench()
