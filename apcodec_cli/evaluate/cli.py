"""`apcodec eval`: score a weights file against Opus on held-out audio, as markdown tables.

Only click is imported here at module level, so registering the command costs the other
commands nothing; torch, the codec and the metric packages load when the command runs.
Run it without installing the command as ``python -m apcodec_cli.evaluate.cli``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import traceback
from typing import TYPE_CHECKING, Any, Callable, NoReturn

import click

from ..options import DEVICE_HELP, Device, stoppable

if TYPE_CHECKING:  # the real imports are deferred, see the module docstring
    from ..codec import Codec
    from .run import Clip, Row, Settings

EXIT_FAILED = 1  # usage errors exit with 2, as click does
OPUS_KBPS = (6.0, 12.0)  # the Opus reference points of every run, in kbit/s


def _fail(exc: BaseException | str) -> NoReturn:
    """One-line error on stderr (a traceback with APCODEC_DEBUG set) and exit status 1."""
    from ..errors import describe

    if isinstance(exc, BaseException) and os.environ.get("APCODEC_DEBUG"):
        traceback.print_exception(exc)
    click.echo(f"apcodec: error: {exc if isinstance(exc, str) else describe(exc)}", err=True)
    sys.exit(EXIT_FAILED)


def _preamble(codec: "Codec", settings: "Settings", elapsed: float, clips: int) -> str:
    """The lines above the tables: which weights, which settings, how long it took."""
    loaded = codec.weights
    state = "trained" if loaded.trained else "UNTRAINED (random initialisation)"
    opus = "no Opus" if not settings.opus_kbps else \
        f"Opus {'VBR' if settings.opus_vbr else 'hard CBR'} via opus-tools"
    arithmetic = "bf16" if codec.bf16 else "float32"
    return (f"Weights `{loaded.path}` ({codec.config.name}, fingerprint "
            f"{loaded.fingerprint.hex()}, {state}, run in {arithmetic}); {clips} clips, first "
            f"{settings.seconds:g} s "
            f"of each, mono 48 kHz; {opus}; mean ± standard error over clips; "
            f"{elapsed:.0f} s in all.")


def _write_json(path: str, rows: list["Row"], summary: dict[str, Any],
                preamble: str) -> None:
    """Per-clip rows and the summary as one JSON file, written atomically (NaN as null)."""
    from ..format.atomic import atomic_write

    def clean(value: Any) -> Any:
        return None if isinstance(value, float) and value != value else value

    document = {"description": preamble, "summary": summary,
                "rows": [{k: clean(v) for k, v in row.items()} for row in rows]}
    with atomic_write(path) as f:
        f.write((json.dumps(document, indent=1, ensure_ascii=False) + "\n").encode())


def _prepare(data: str, category: str | None, max_clips: int | None, min_seconds: float,
             opus: bool, weights_path: str | None, device: str,
             threads: int) -> tuple[list["Clip"], "Codec"]:
    """Clips, dependency checks and the codec: every failure that can come before work."""
    from . import metrics
    from . import opus as opus_tools
    from .run import collect_clips

    try:
        clips = collect_clips(data, category, max_clips, min_seconds)
        metrics.check_dependencies(speech=any(c.category == "speech" for c in clips))
        if opus:
            opus_tools.require_opus_tools()
        # deferred: torch loads only once the inputs are known good
        from ..codec import Codec
        from ..runtime import set_threads

        set_threads(threads)  # this process's, once, before any computation
        return clips, Codec.load(weights_path, device=device)
    except Exception as exc:
        _fail(exc)


def _score(clips: list["Clip"], settings: "Settings", codec: "Codec", jobs: int,
           threads: int, quiet: bool) -> list["Row"]:
    """Every clip's rows, with a progress bar on stderr; one-line exit on any failure.
    --jobs is capped as `apcodec encode` caps it: by the clips, cores and memory."""
    from tqdm import tqdm

    from ..runtime import usable_workers
    from .run import evaluate_all

    if jobs > 1:
        jobs, why = usable_workers(min(jobs, len(clips)))
        if why and not quiet:
            click.echo(f"apcodec: warning: {why}", err=True)

    try:
        with tqdm(total=len(clips), unit="clip", disable=quiet or not sys.stderr.isatty(),
                  file=sys.stderr) as bar:
            return evaluate_all(clips, settings, codec, jobs, threads,
                                on_clip=lambda _: bar.update())
    except Exception as exc:
        _fail(exc)


def clip_study_options(default_clips: int) -> Callable[[Callable], Callable]:
    """The options of the maintainer tools that study one weights file on the first seconds
    of a corpus's clips (`scripts/diagnose.py`, `scripts/standing_phase.py`): --weights,
    --data, --category, --max-clips, --seconds, --threads and -q, passed to the command as
    weights_path, data, category, max_clips, seconds, threads and quiet."""
    options = [
        click.option("--weights", "weights_path", required=True,
                     type=click.Path(dir_okay=False), help="Weights file to study."),
        click.option("--data", required=True, type=click.Path(exists=True, file_okay=False),
                     help="Corpus folder (validation split), held-out folder, or a folder "
                          "of one --category."),
        click.option("--category", type=click.Choice(["speech", "music"]), default=None),
        click.option("--max-clips", type=click.IntRange(min=1), default=default_clips,
                     show_default=True, help="Clips per category."),
        click.option("--seconds", type=click.FloatRange(min=1), default=10.0,
                     show_default=True),
        click.option("--threads", type=click.IntRange(min=0), default=0,
                     help="torch threads (0: default)."),
        click.option("-q", "--quiet", is_flag=True, help="No progress bar."),
    ]

    def apply(command: Callable) -> Callable:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


@click.command("eval")
@click.option("-w", "--weights", "weights_path", type=click.Path(exists=True, dir_okay=False),
              help="Weights file to score (default: $APCODEC_WEIGHTS, else the installed ones).")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False),
              help="Corpus folder (manifest.jsonl: its validation split is used) or any "
                   "folder of audio files (then --category names what it holds).")
@click.option("--category", type=click.Choice(["speech", "music"]),
              help="Only this category of a corpus; the category of a plain folder.")
@click.option("--max-clips", type=click.IntRange(min=1), default=None,
              help="At most this many clips per category, chosen deterministically "
                   "(packages take turns) [default: all].")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=10.0,
              show_default=True, help="Use the first SECONDS of each clip.")
@click.option("--min-seconds", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Skip shorter clips (ViSQOL needs about 1 s).")
@click.option("--no-opus", is_flag=True, help="Score APCodec only (no opus-tools needed).")
@click.option("--opus-cbr", is_flag=True,
              help="Opus in hard CBR instead of opusenc's default VBR.")
@click.option("--json-out", type=click.Path(dir_okay=False),
              help="Also write every per-clip score and the summary to this JSON file.")
@click.option("--report", type=click.Path(file_okay=False),
              help="Also write a listening report to this folder: a static page "
                   "(index.html, works from disk or a zip) with each clip's source, APCodec "
                   "and Opus at 6 kbit/s as players (16-bit FLAC) and spectrograms, the "
                   "score tables and the settings. Short clips keep it small (--seconds).")
@click.option("-f", "--force", is_flag=True,
              help="Overwrite an existing --json-out file or --report folder (a report).")
@click.option("--device", type=Device(), default="auto", show_default=True,
              help=f"{DEVICE_HELP} The metrics run on the CPU.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Clips evaluated in parallel (worker processes).")
@click.option("--threads", type=click.IntRange(min=0), default=0,
              help="CPU threads for torch per process (0: torch's default, or the cores "
                   "shared out among --jobs).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or warnings.")
@stoppable
def evaluate(weights_path: str | None, data: str, category: str | None,
             max_clips: int | None, seconds: float, min_seconds: float, no_opus: bool,
             opus_cbr: bool, json_out: str | None, report: str | None, force: bool,
             device: str, jobs: int, threads: int, quiet: bool) -> None:
    """Score a weights file on DATA with ViSQOL, PESQ, ESTOI, LSD and log-mel distance.

    Each clip is coded with APCodec (real .apc files, whose size gives the bitrate) and
    with Opus at 6 and 12 kbit/s (opusenc/opusdec); one markdown table per category goes
    to stdout. Needs the eval extra (pip install 'apcodec[eval]') and, for Opus,
    opus-tools (apt-get install opus-tools). With --report, also a static listening page.
    """
    if json_out and os.path.exists(json_out) and not force:
        raise click.UsageError(f"{json_out} exists: pass --force to overwrite it")
    if report:
        from .listening import command as listening  # only a report needs it

        listening.check_target(report, force)
    clips, codec = _prepare(data, category, max_clips, min_seconds, not no_opus,
                            weights_path, device, threads)
    if not codec.weights.trained and not quiet:
        click.echo(f"apcodec: warning: {codec.weights.path} holds UNTRAINED weights "
                   "(random initialisation): expect APCodec scores near the floor", err=True)
    from . import report as tables
    from .run import Settings

    with listening.building(report) if report else contextlib.nullcontext() as folder:
        settings = Settings(seconds=seconds, opus_kbps=() if no_opus else OPUS_KBPS,
                            opus_vbr=not opus_cbr, report=folder and str(folder))
        start = time.perf_counter()
        rows = _score(clips, settings, codec, jobs, threads, quiet)
        elapsed = time.perf_counter() - start
        summary = tables.summarize(rows)
        if folder:
            try:
                listening.write(folder, codec, settings, clips, rows, summary, elapsed)
            except Exception as exc:
                _fail(exc)
    preamble = _preamble(codec, settings, elapsed, len(clips))
    click.echo(tables.markdown_report(summary, preamble), nl=False)
    if json_out:
        _write_json(json_out, rows, tables.summary_json(summary), preamble)
    if report and not quiet:
        click.echo(listening.describe(report), err=True)
    if not quiet:
        click.echo(f"apcodec: {len(clips)} clips in {elapsed:.1f} s "
                   f"({elapsed / len(clips):.1f} s per clip)", err=True)


if __name__ == "__main__":
    evaluate()
