"""The `apcodec` command: encode, decode, info, batch-status. Thin: paths, options and messages only."""

from __future__ import annotations

import importlib
import io
import os
import signal
import sys
from typing import Any, Callable

import click

from .. import __version__
from ..errors import ApcodecError, describe
from ..options import DEVICE_HELP, Device, Seconds, stoppable
from .convert import Options, run
from .report import EXIT_FAILED, fail


def _split(paths: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
    """INPUT... OUTPUT: a usage error names whichever is missing."""
    if not paths:
        raise click.UsageError("missing INPUT and OUTPUT: give one or more inputs, then "
                               "where to write ('-': stdin/stdout)")
    if len(paths) == 1:
        raise click.UsageError(f"missing OUTPUT after {paths[0]}: say where to write "
                               "(a file, a folder, or '-' for stdout)")
    return paths[:-1], paths[-1]


def _conversion_options(f: Callable) -> Callable:
    """Options shared by encode and decode."""
    decorators = [
        click.argument("paths", nargs=-1, metavar="INPUT... OUTPUT"),
        click.option("-w", "--weights", type=click.Path(dir_okay=False),
                     help="Weights file (default: $APCODEC_WEIGHTS, else the newest installed "
                          "release; streamable: $APCODEC_STREAM_WEIGHTS, else the newest "
                          "streamable release; decode: the release that made each file)."),
        click.option("--device", type=Device(), default="auto", show_default=True,
                     help=DEVICE_HELP),
        click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]),
                     help="Arithmetic of the full model: auto (the default, or "
                          "$APCODEC_PRECISION) is bf16 on CPUs with bf16 instructions "
                          "(AVX512-BF16, AMX; about 1.3x faster, same quality), else fp32."),
        click.option("-f", "--force", is_flag=True, help="Overwrite existing outputs."),
        click.option("-j", "--jobs", type=click.IntRange(1), default=1, show_default=True,
                     help="Files converted in parallel (worker processes)."),
        click.option("--shard", metavar="K/N|auto",
                     help="Convert only the K-th of N shares of the inputs (for clusters); "
                          "auto: K and N from a Slurm job array or a Kubernetes Indexed Job "
                          "(docs/scale-out.md)."),
        click.option("--summary", type=click.Path(dir_okay=False), metavar="FILE.jsonl",
                     help="Append a JSON line per file (planned, then done, skipped or "
                          "failed, with seconds and bytes); merge with `apcodec "
                          "batch-status`."),
        click.option("-q", "--quiet", is_flag=True,
                     help="No progress bars, warnings or summary (bars are drawn on a "
                          "terminal only)."),
        click.option("-s", "--streaming", is_flag=True,
                     help="Use the streamable low-latency model (APCodec-S); with '-' as "
                          "input or output, run as a real-time pipe."),
    ]
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


class _Commands(click.Group):
    """The command group. `train`, `eval` and `bench` are loaded only when named (or listed
    by --help): encode and decode never import them."""

    _LAZY = {"train": ("..train.cli", "train"), "eval": ("..evaluate.cli", "evaluate"),
             "bench": ("..bench.cli", "bench")}  # name: (module, attribute)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._LAZY})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self._LAZY and name not in self.commands:
            module, attribute = self._LAZY[name]
            # These modules import only click; torch, the trainer and the metrics load on use.
            self.add_command(getattr(importlib.import_module(module, __package__), attribute),
                             name)
        return super().get_command(ctx, name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="apcodec")
def main() -> None:
    """apcodec: 48 kHz audio at 6 kbit/s with the APCodec neural codec.

    \b
    Examples:
      apcodec encode speech.flac speech.apc        one file
      apcodec decode speech.apc speech.wav
      apcodec encode music/ codes/ --jobs 2        a whole tree, mirrored
      apcodec decode codes/ wavs/ --shard 3/8      one eighth of a tree (clusters)
      apcodec encode music/ codes/ --shard auto --summary logs/$SLURM_ARRAY_TASK_ID.jsonl
                                                   one task of a Slurm array
      apcodec batch-status logs/ --inputs music/   did every task finish?
      sox in.wav -t wav - | apcodec encode - - | apcodec decode - out.wav
      arecord -f S16_LE -r 48000 | apcodec encode -s - - | apcodec decode -s - - | aplay
                                                   real time, 12.5 ms algorithmic latency
      apcodec info speech.apc                      header and integrity check
      apcodec models                               the installed model releases

    Exit status: 0 on success, 1 if any input failed, 2 on a usage error, 130 on
    Ctrl-C and 143 on SIGTERM (partial outputs are removed).
    """


@main.command()
@_conversion_options
@click.option("--mono", is_flag=True, help="Downmix to one channel (default: code every channel).")
@click.option("--packet", type=click.IntRange(1, 65535), metavar="FRAMES",
              help="Real-time pipes (-s with '-') only: code frames (6.67 ms each) per "
              "record; fewer mean less delay and more overhead (default 15: 6.5 kbit/s, "
              "100 ms).")
@stoppable
def encode(paths: tuple[str, ...], **options: Any) -> None:
    """Encode audio files (WAV, FLAC, OGG, MP3, ...; any rate) into .apc files.

    INPUT may be files, folders (converted recursively) or '-' for stdin. With one input
    file OUTPUT is the .apc file to write ('-' for stdout); otherwise, or when it ends
    with '/', it is a folder that mirrors the inputs, and outputs that already exist are
    skipped unless --force. Each channel costs 6 kbit/s.

    The encoder also decodes what it codes (about 1.5 times the time of coding alone)
    and sends, for every 0.2 s, the gain that brings the decoded audio to the source's
    level: 40 bit/s more (files of format version 3).

    With --streaming the causal model codes the audio as it arrives (no look-ahead), and
    with '-' as INPUT (a WAV stream) or OUTPUT the codes are written as a live stream,
    record by record, as the audio comes in.
    """
    run(Options(command="encode", **options), *_split(paths))


@main.command()
@_conversion_options
@click.option("--original-rate", is_flag=True,
              help="Write at the source's sample rate instead of 48 kHz.")
@click.option("--float", "float32", is_flag=True, help="32-bit float WAV instead of 16-bit PCM.")
@click.option("--start", type=Seconds(), default=0.0, metavar="SECONDS",
              help="Decode from this time on (only the chunks needed are read).")
@click.option("--duration", type=Seconds(), metavar="SECONDS",
              help="Decode only this many seconds.")
@click.option("--skip-damaged", is_flag=True,
              help="Write silence for damaged chunks, or a live stream's damaged records "
                   "(each named in a warning), instead of failing; by default a damaged "
                   "chunk fails the file before any decoding.")
@stoppable
def decode(paths: tuple[str, ...], **options: Any) -> None:
    """Decode .apc files into WAV files of exactly the source's length.

    INPUT may be files, folders (every *.apc inside, recursively) or '-' for stdin;
    OUTPUT as for encode. An output file is written in the format its name says: .wav,
    .flac, .aiff, .ogg (Vorbis), .opus, .mp3 (where this machine's libsndfile writes
    them); '-' writes WAV to stdout as it is decoded. Files from the streamable model are
    decoded with it; --weights, if given, must be those that encoded the file.

    With --streaming and '-' as INPUT or OUTPUT, audio is written as the codes arrive
    (a WAV stream of open length, 48 kHz).
    """
    run(Options(command="decode", **options), *_split(paths))


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file on stdout.")
@stoppable
def info(files: tuple[str, ...], as_json: bool) -> None:
    """Show the header of .apc files and check the checksum of every chunk.

    FILES may be folders (every *.apc inside, recursively); '-' reads a file or a live
    stream from stdin. Runs the checks that decode runs first, and exits with 1 if any
    file is unreadable or damaged (each damaged chunk is named with its time range).
    """
    from .info import describe_file, expand

    found = expand(files)
    if not found:
        raise click.UsageError(f"no .apc files found in {', '.join(files)}")
    ok = True
    for path in found:
        data = io.BytesIO(sys.stdin.buffer.read()) if path == "-" else None
        text, intact = describe_file(path, as_json, data)
        try:
            click.echo(text)
        except OSError as exc:  # /dev/full, a closed pipe: stdout's fault, named so
            raise OSError(exc.errno, exc.strerror, "stdout") from None
        ok &= intact
    if not ok:
        sys.exit(EXIT_FAILED)


@main.command("batch-status")
@click.argument("summaries", nargs=-1, required=True, type=click.Path(exists=True),
                metavar="SUMMARY...")
@click.option("--inputs", multiple=True, type=click.Path(exists=True), metavar="PATH",
              help="The batch's inputs (repeatable): every file of them must have a "
                   "finished output, so that a task that never ran is found too.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
def batch_status(summaries: tuple[str, ...], inputs: tuple[str, ...], as_json: bool) -> None:
    """Merge the --summary files of a batch's tasks: which files failed, is it complete?

    SUMMARY may be files or folders (their *.jsonl). The latest line of each output
    counts, so the summaries of reruns simply join the others. Prints one line per
    failed, unfinished (its task stopped) or missing file, the totals, and which shares to
    run again: rerunning a task is all it takes, as finished outputs are skipped.

    Exit status: 0 when every output is there, 1 when some failed or are missing, 2 on a
    usage error (no summary, a file that is not one).
    """
    import json

    from .status import as_json as status_json, batch_status as merge, report
    from .summary import SummaryError

    try:
        status = merge(summaries, inputs)
    except SummaryError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(json.dumps(status_json(status)) if as_json else "\n".join(report(status)))
    if not status.complete:
        sys.exit(EXIT_FAILED)


@main.command()
def models() -> None:
    """List the installed model releases and their code tables.

    `encode` uses the newest release of each kind; `decode` and `info` find the release
    that made each file by its header, among these and in the folders of
    $APCODEC_WEIGHTS_PATH (README: old releases).
    """
    from .models import describe_models

    click.echo(describe_models())


def entry() -> None:
    """The console script: `main`, with any unexpected error reported in one line too."""
    try:
        main(standalone_mode=True)
    except ApcodecError as exc:  # one that no command reported itself
        fail(describe(exc))
    except BrokenPipeError:  # stdout's reader has gone (`apcodec info x.apc | head`)
        sys.exit(128 + signal.SIGPIPE)  # quietly, with cat's status
    except OSError as exc:  # the system refused (a full disk, /dev/full): not a bug
        fail(describe(exc))
    except Exception as exc:  # a bug: still no traceback unless asked for
        if os.environ.get("APCODEC_DEBUG"):
            raise
        fail(f"{describe(exc)} (internal error; APCODEC_DEBUG=1 shows the traceback)")
    finally:
        _quiet_broken_stdout()


def _quiet_broken_stdout() -> None:
    """When stdout's reader has gone (`apcodec decode x.apc - | head -c 10`), exit without
    Python's 'Exception ignored ... BrokenPipeError' at shutdown."""
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
