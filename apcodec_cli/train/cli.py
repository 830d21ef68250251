"""`apcodec train`: train the codec (or resume a run) and export a weights file.

Only click is imported here at module level, so registering the command costs the other
commands nothing; torch and the training modules load when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # the real import is deferred, see the module docstring
    from .loop import RunResult

EXIT_INTERRUPTED = 130  # the shell's code for a run stopped by Ctrl-C or SIGTERM


def parse_assignments(values: tuple[str, ...]) -> dict[str, str]:
    """{KEY: VALUE} of `--set KEY=VALUE` options."""
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--set")
        out[key.strip()] = value.strip()
    return out


@click.command()
@click.option("--data", "data", required=True, type=click.Path(exists=True, file_okay=False),
              help="Corpus folder (manifest.jsonl), pack folder (index.json) or any folder "
                   "of audio files.")
@click.option("--run-dir", required=True, type=click.Path(file_okay=False),
              help="Folder of the run: state.pt, config.json, log.jsonl, apcodec.pt.")
@click.option("--preset", default=None,
              help="Training preset (default: reference; a wrong name lists the others).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Change one configuration value (repeatable), e.g. batch_size=8, "
                   "codec.dim=128, mpd_channels=[16,64,128,256,256].")
@click.option("--resume", is_flag=True, help="Continue the run saved in --run-dir.")
@click.option("--max-steps", type=click.IntRange(min=1), default=None,
              help="Stop at this global step (default: the configuration's steps).")
@click.option("--max-minutes", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop cleanly (state saved, weights exported) after this many minutes.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--export", "export_path", type=click.Path(dir_okay=False), default=None,
              help="Where to write the weights (default: RUN_DIR/apcodec.pt).")
@click.option("--init", "init_path", type=click.Path(exists=True, dir_okay=False),
              default=None, help="Start a new run's generator from this weights file "
                                 "(with --set codec.n_blocks=N above the file's, the extra "
                                 "blocks start as identities).")
@click.option("--force", is_flag=True, help="Overwrite an existing --export file.")
@click.option("--resident/--stream", default=None,
              help="Hold the training audio in (GPU) memory, or stream crops from disk with "
                   "worker processes (default: resident on CUDA, streaming on the CPU).")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True,
              help="Data loader worker processes when streaming.")
@click.option("--heldout", "heldout", type=click.Path(exists=True, file_okay=False),
              default=None,
              help="Corpus of sources never trained on (build_corpus.py --heldout): every "
                   "validation scores it too, logged as out-of-source 'heldout' records.")
@click.option("--threads", type=click.IntRange(min=0), default=0,
              help="CPU threads for torch (0: torch's default).")
@click.option("--quiet", is_flag=True, help="No progress line.")
def train(data: str, run_dir: str, preset: str | None, overrides: tuple[str, ...],
          resume: bool, max_steps: int | None, max_minutes: float | None, device: str,
          export_path: str | None, init_path: str | None, force: bool,
          resident: bool | None, workers: int, heldout: str | None, threads: int,
          quiet: bool) -> None:
    """Train APCodec on DATA (the published recipe by default) and export its weights."""
    if resume and (preset or overrides or init_path):
        raise click.UsageError("a resumed run keeps its configuration and weights: "
                               "drop --preset/--set/--init")
    if export_path and Path(export_path).exists() and not force:
        raise click.UsageError(f"{export_path} exists: pass --force to overwrite it")
    # deferred: the other commands never load torch and the training code
    from ..errors import ApcodecError
    from ..io.weights import set_threads
    from .config import get_train_preset
    from .loop import RunOptions, run

    set_threads(threads)
    options = RunOptions(
        data=Path(data), run_dir=Path(run_dir), resume=resume, device=device,
        max_steps=max_steps, max_minutes=max_minutes,
        export=Path(export_path) if export_path else None,
        init=Path(init_path) if init_path else None,
        resident=resident, workers=workers,
        heldout=Path(heldout) if heldout else None, quiet=quiet)
    try:
        config = None if resume else \
            get_train_preset(preset or "reference").override(parse_assignments(overrides))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        result = run(config, options)
    except ApcodecError as exc:  # a bad corpus, state or weights file: one line
        raise click.ClickException(str(exc).splitlines()[0]) from None
    _report(result, run_dir, quiet=quiet or not result.main)


def _report(result: RunResult, run_dir: str, quiet: bool) -> None:
    """Say how the run ended (on stderr); exit 130 when a signal stopped it."""
    if not quiet:
        click.echo(f"apcodec: step {result.step} ({result.reason}); weights {result.weights} "
                   f"(fingerprint {result.fingerprint.hex()})", err=True)
    if result.reason == "signal":
        if not quiet:
            click.echo(f"apcodec: interrupted; continue with --resume --run-dir {run_dir}",
                       err=True)
        raise SystemExit(EXIT_INTERRUPTED)


if __name__ == "__main__":  # `torchrun ... -m apcodec_cli.train.cli ...` before registration
    train()
