"""The `apcodec` command: encode, decode, info. Thin: paths, options and messages only."""

from __future__ import annotations

import functools
import io
import os
import sys
from pathlib import Path
from typing import Any, Callable

import click

from . import __version__
from .batch import APC_EXTENSION, AUDIO_EXTENSIONS, Job, PlanError, Summary, describe, \
    parse_shard, plan_jobs, run_jobs

EXIT_FAILED = 1  # some input could not be converted (usage errors exit with 2)
_CODECS: dict[bool, Any] = {}  # this process's codecs by streamable, loaded once each
_LOAD: dict[str, Any] = {}  # how to load them: weights, device, quiet, threads, precision


class Options:
    """Options of one command invocation, shared by every file it converts."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


def _warn(message: str, quiet: bool) -> None:
    if not quiet:
        click.echo(f"apcodec: warning: {message}", err=True)


def _setup(weights: str | None, device: str, quiet: bool, threads: int = 0,
           precision: str | None = None, preload: bool | None = None) -> None:
    """Say how this process (the CLI's or a pool worker) loads codecs; load one now."""
    _LOAD.update(weights=weights, device=device, quiet=quiet, threads=threads,
                 precision=precision)
    _CODECS.clear()
    if preload is not None:
        _codec(preload)


def _codec(streamable: bool) -> Any:
    """The codec for the full (False) or the streamable (True) model, loaded on first use:
    --weights if given (whatever model it holds, but streaming needs the streamable one),
    else the installed default of that kind."""
    key = "explicit" if _LOAD["weights"] else streamable
    if key not in _CODECS:
        import torch  # deferred: `apcodec --help` and `info` stay fast

        from .codec import Codec

        if _LOAD["threads"]:
            torch.set_num_threads(_LOAD["threads"])
        codec = Codec.load(_LOAD["weights"], device=_LOAD["device"], streamable=streamable,
                           precision=_LOAD["precision"])
        if not codec.weights.trained:
            _warn(f"{codec.weights.path} holds UNTRAINED weights (random initialisation): "
                  "the decoded audio will not resemble the input", _LOAD["quiet"])
        _CODECS[key] = codec
    codec = _CODECS[key]
    if streamable and not codec.config.causal:
        raise ValueError(f"{codec.weights.path} holds the full (non-streamable) model; "
                         "streaming needs the streamable one: pass other --weights")
    return codec


def _codec_for_file(source: Any) -> Any:
    """The codec that can decode `source` (a path or seekable file): by its header."""
    from .bitstream import peek_header

    if isinstance(source, str):
        with open(source, "rb") as f:
            return _codec(peek_header(f).streamable)
    return _codec(peek_header(source).streamable)


def _open_input(path: str) -> Any:
    return io.BytesIO(sys.stdin.buffer.read()) if path == "-" else path


def _write_output(path: str, write: Callable[[Any], Any]) -> Any:
    """Run `write(fileobj)` into `path` atomically, or into stdout for '-'."""
    from .atomic import atomic_write

    if path == "-":
        buffer = io.BytesIO()  # whole result first: a failure emits nothing
        result = write(buffer)
        sys.stdout.buffer.write(buffer.getvalue())
        sys.stdout.buffer.flush()
        return result
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        return write(f)


def _live(opts: Options, job: Job) -> bool:
    """Whether a job runs as a real-time pipe: --streaming with stdin or stdout."""
    return opts.streaming and "-" in (job.source, job.target)


def _encode_one(opts: Options, job: Job, progress: Callable[[float], None] | None = None) -> None:
    codec = _codec(opts.streaming)
    if _live(opts, job):
        from .live import encode_pipe
        return encode_pipe(codec, job.source, job.target, opts.mono, opts.packet, progress)
    source = _open_input(job.source)
    _write_output(job.target, lambda f: codec.encode_file(source, f, mono=opts.mono,
                                                           progress=progress))


def _decode_one(opts: Options, job: Job, progress: Callable[[float], None] | None = None) -> None:
    flac = job.target.lower().endswith(".flac")
    if flac and opts.float:
        raise ValueError("FLAC cannot hold float samples: drop --float or write .wav")
    if _live(opts, job):
        if opts.original_rate or opts.start or opts.duration is not None or flac:
            raise ValueError("a real-time pipe writes 48 kHz WAV from the start: drop "
                             "--original-rate/--start/--duration, or decode without --streaming")
        from .live import decode_pipe
        return decode_pipe(_codec, job.source, job.target, opts.float, progress)
    source = _open_input(job.source)
    codec = _codec_for_file(source)
    result = _write_output(job.target, lambda f: codec.decode_file(
        source, f, original_rate=opts.original_rate, start=opts.start, duration=opts.duration,
        subtype="FLOAT" if opts.float else "PCM_16", format="FLAC" if flac else "WAV",
        progress=progress))
    if result.clipped:
        _warn(f"{job.target}: {result.clipped} samples clipped to full scale "
              f"(try --float to keep them)", opts.quiet)


def _run(convert: Callable[..., None], opts: Options, sources: tuple[str, ...], output: str,
         extensions: frozenset[str], suffix: str) -> None:
    """Plan, check and run a conversion command; exit non-zero if anything failed."""
    from tqdm import tqdm

    try:
        jobs = plan_jobs(sources, output, extensions, suffix,
                         parse_shard(opts.shard) if opts.shard else None)
    except PlanError as exc:
        raise click.UsageError(str(exc)) from None
    single = len(jobs) == 1 and jobs[0].target == output
    if single and output != "-" and os.path.exists(output) and not opts.force:
        _fail(f"{output} already exists (use --force to overwrite)")
    try:
        _setup(opts.weights, opts.device, opts.quiet, precision=opts.precision,
               preload=_first_kind(opts, jobs))
    except Exception as exc:
        _fail(describe(exc))
    if single:
        ranged = getattr(opts, "start", 0) or getattr(opts, "duration", None) is not None
        total = None if ranged or jobs[0].source == "-" else _duration(jobs[0].source)
        with tqdm(desc=Path(jobs[0].source).name, unit="s", disable=opts.quiet, total=total,
                  bar_format="{desc}: {n:.1f} s [{elapsed}]" if total is None else
                  "{l_bar}{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]") as bar:
            summary = run_jobs(jobs, functools.partial(convert, opts, progress=bar.update),
                               force=True, n_jobs=1)
    else:
        with tqdm(total=len(jobs), unit="file", disable=opts.quiet or not jobs) as bar:
            rows = _shared_rows(opts)
            if rows:  # one process, forward passes shared between files (a GPU's way)
                from .multifile import convert_files
                summary = convert_files(jobs, functools.partial(convert, opts), _CODECS[False],
                                        force=opts.force, rows=rows,
                                        on_done=lambda job: bar.update())
            else:
                summary = run_jobs(
                    jobs, functools.partial(convert, opts), force=opts.force, n_jobs=opts.jobs,
                    initializer=_setup if opts.jobs > 1 else None,
                    initargs=(opts.weights, opts.device, True,
                              max(1, (os.cpu_count() or 1) // opts.jobs), opts.precision),
                    on_done=lambda job: bar.update())
    _report(summary, opts.quiet, single)


def _shared_rows(opts: Options) -> int:
    """Rows per forward pass shared between a folder's files (see multifile.py), or 0 to
    convert them one by one: shared with the full model on CUDA and --jobs 1."""
    if opts.jobs > 1 or False not in _CODECS:  # --jobs asks for processes; -s, or streamable
        return 0
    from .multifile import shared_rows
    return shared_rows(_CODECS[False])


def _first_kind(opts: Options, jobs: list[Job]) -> bool | None:
    """Which codec to load before converting (so a missing model fails once, up front):
    encode's by --streaming; decode's by the first file's header, when it can be read."""
    if hasattr(opts, "mono"):
        return opts.streaming
    if not jobs or jobs[0].source == "-":
        return None
    try:
        from .bitstream import read_header
        with open(jobs[0].source, "rb") as f:
            return read_header(f).streamable
    except Exception:  # the conversion reports unreadable files
        return None


def _duration(source: str) -> float | None:
    """Seconds of audio in a source file, for the progress bar; None when unknown."""
    try:
        if source.endswith(APC_EXTENSION):
            from .bitstream import ApcReader
            with open(source, "rb") as f:
                return ApcReader(f).header.duration
        from .audio import probe, resampled_length
        info, rate = probe(source), 48_000  # every preset codes at 48 kHz
        return resampled_length(info.frames, info.sample_rate, rate) / rate
    except Exception:  # the conversion itself reports unreadable inputs
        return None


def _report(summary: Summary, quiet: bool, single: bool) -> None:
    for job, error in summary.failed:
        click.echo(f"apcodec: error: {job.source}: {error}", err=True)
    if not single and not quiet:
        click.echo(f"apcodec: {len(summary.done)} converted, {len(summary.skipped)} skipped "
                   f"(already exist; --force to redo), {len(summary.failed)} failed", err=True)
    if summary.failed:
        sys.exit(EXIT_FAILED)


def _fail(message: str) -> None:
    click.echo(f"apcodec: error: {message}", err=True)
    sys.exit(EXIT_FAILED)


def _conversion_options(f: Callable) -> Callable:
    """Options shared by encode and decode."""
    decorators = [
        click.argument("sources", nargs=-1, required=True, metavar="INPUT..."),
        click.argument("output", metavar="OUTPUT"),
        click.option("-w", "--weights", type=click.Path(dir_okay=False),
                     help="Weights file (default: $APCODEC_WEIGHTS, else the installed "
                          "weights; streamable: $APCODEC_STREAM_WEIGHTS, else apcodec-s.pt)."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                     show_default=True, help="Where the model runs; auto picks CUDA if present."),
        click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]),
                     help="Arithmetic of the full model: auto (the default, or "
                          "$APCODEC_PRECISION) is bf16 on CPUs with bf16 instructions "
                          "(AVX512-BF16, AMX; about 1.3x faster, same quality), else fp32."),
        click.option("-f", "--force", is_flag=True, help="Overwrite existing outputs."),
        click.option("-j", "--jobs", type=click.IntRange(1), default=1, show_default=True,
                     help="Files converted in parallel (worker processes)."),
        click.option("--shard", metavar="K/N",
                     help="Convert only the K-th of N shares of the inputs (for clusters)."),
        click.option("-q", "--quiet", is_flag=True, help="No progress bars or warnings."),
        click.option("-s", "--streaming", is_flag=True,
                     help="Use the streamable low-latency model (APCodec-S); with '-' as "
                          "input or output, run as a real-time pipe."),
    ]
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="apcodec")
def main() -> None:
    """apcodec: 48 kHz audio at 6 kbit/s with the APCodec neural codec.

    \b
    Examples:
      apcodec encode speech.flac speech.apc        one file
      apcodec decode speech.apc speech.wav
      apcodec encode music/ codes/ --jobs 2        a whole tree, mirrored
      apcodec decode codes/ wavs/ --shard 3/8      one eighth of a tree (clusters)
      sox in.wav -t wav - | apcodec encode - - | apcodec decode - out.wav
      arecord -f S16_LE -r 48000 | apcodec encode -s - - | apcodec decode -s - - | aplay
                                                   real time, 12.5 ms algorithmic latency
      apcodec info speech.apc                      header and integrity check

    Exit status: 0 on success, 1 if any input failed, 2 on a usage error.
    """


@main.command()
@_conversion_options
@click.option("--mono", is_flag=True, help="Downmix to one channel (default: code every channel).")
@click.option("--packet", type=click.IntRange(1, 65535), default=15, show_default=True,
              metavar="FRAMES", help="Real-time pipes: code frames (6.67 ms each) per record; "
              "fewer mean less delay and more overhead (15: 6.5 kbit/s, 100 ms).")
def encode(sources: tuple[str, ...], output: str, **options: Any) -> None:
    """Encode audio files (WAV, FLAC, OGG, MP3, ...; any rate) into .apc files.

    INPUT may be files, folders (converted recursively) or '-' for stdin. With one input
    file OUTPUT is the file to write ('-' for stdout); otherwise it is a folder that
    mirrors the inputs, and outputs that already exist are skipped unless --force.
    Each channel costs 6 kbit/s.

    With --streaming the causal model codes the audio as it arrives (no look-ahead), and
    with '-' as INPUT (a WAV stream) or OUTPUT the codes are written as a live stream,
    record by record, as the audio comes in.
    """
    _run(_encode_one, Options(**options), sources, output, AUDIO_EXTENSIONS, APC_EXTENSION)


@main.command()
@_conversion_options
@click.option("--original-rate", is_flag=True,
              help="Write at the source's sample rate instead of 48 kHz.")
@click.option("--float", "float", is_flag=True, help="32-bit float WAV instead of 16-bit PCM.")
@click.option("--start", type=click.FloatRange(0), default=0.0, metavar="SECONDS",
              help="Decode from this time on (only the chunks needed are read).")
@click.option("--duration", type=click.FloatRange(0), metavar="SECONDS",
              help="Decode only this many seconds.")
def decode(sources: tuple[str, ...], output: str, **options: Any) -> None:
    """Decode .apc files into WAV files of exactly the source's length.

    INPUT may be files, folders (every *.apc inside, recursively) or '-' for stdin;
    OUTPUT as for encode. An output named *.flac is written as FLAC, anything else as
    WAV. Files from the streamable model are decoded with it; --weights, if given, must
    be those that encoded the file.

    With --streaming and '-' as INPUT or OUTPUT, audio is written as the codes arrive
    (a WAV stream of open length, 48 kHz).
    """
    _run(_decode_one, Options(**options), sources, output, frozenset({APC_EXTENSION}), ".wav")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file on stdout.")
def info(files: tuple[str, ...], as_json: bool) -> None:
    """Show the header of .apc files and check the checksum of every chunk.

    Exits with 1 if any file is unreadable or damaged (each damaged chunk is named
    with its time range).
    """
    from .info import describe_file

    ok = True
    for path in files:
        text, intact = describe_file(path, as_json)
        click.echo(text)
        ok &= intact
    if not ok:
        sys.exit(EXIT_FAILED)


def entry() -> None:
    """The console script: `main`, with any unexpected error reported in one line too."""
    try:
        main(standalone_mode=True)
    except Exception as exc:  # a bug: still no traceback unless asked for
        if os.environ.get("APCODEC_DEBUG"):
            raise
        _fail(f"{describe(exc)} (internal error; APCODEC_DEBUG=1 shows the traceback)")


def _register_commands() -> None:
    # These modules import only click; torch, the trainer and the metrics load on use.
    from .bench.cli import bench
    from .evaluate.cli import evaluate
    from .train.cli import train

    main.add_command(train)
    main.add_command(evaluate)
    main.add_command(bench)


_register_commands()
