"""`apcodec eval --report`'s part of the command: the folder, the settings, the page."""

from __future__ import annotations

import dataclasses
import datetime
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import click

from . import folder as folders
from .page import PAGE, write_page

if TYPE_CHECKING:
    from ...codec import Codec
    from ..report import Summary
    from ..run import Clip, Row, Settings

building = folders.building


def check_target(report: str, force: bool) -> None:
    """A usage error (exit status 2) if the report may not be written to `report`."""
    try:
        folders.check_target(report, force)
    except folders.ReportFolderError as exc:
        raise click.UsageError(str(exc)) from None


def command_line() -> str:
    """The running command as typed, reduced to the options given (in their long form)."""
    ctx = click.get_current_context()
    given = (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)
    words = ctx.command_path.split()
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or \
                ctx.get_parameter_source(param.name) not in given:
            continue
        value = ctx.params[param.name]
        words.append(max(param.opts, key=len))
        if not param.is_flag:
            words.append(f"{value:g}" if isinstance(value, float) else str(value))
    return shlex.join(words)


def settings_table(codec: "Codec", settings: "Settings", elapsed: float,
                   clips: int) -> list[tuple[str, str]]:
    """The settings table of the page: what made the report, and how."""
    import torch

    from ... import __version__
    from .. import opus

    loaded = codec.weights
    state = "trained" if loaded.trained else "UNTRAINED (random initialisation)"
    opus_line = "not run (--no-opus)" if not settings.opus_kbps else (
        f"{opus.version()}; {'VBR' if settings.opus_vbr else 'hard CBR'} at "
        f"{' and '.join(f'{k:g}' for k in settings.opus_kbps)} kbit/s")
    now = datetime.datetime.now(datetime.timezone.utc)
    return [("weights", f"{Path(loaded.path).name} ({codec.config.name}, {state})"),
            ("weights fingerprint", loaded.fingerprint.hex()),
            ("apcodec", f"{__version__} (torch {torch.__version__}, "
                        f"{'bf16' if codec.bf16 else 'float32'})"),
            ("Opus", opus_line),
            ("clips", f"{clips}, the first {settings.seconds:g} s of each, mono 48 kHz"),
            ("date", now.strftime("%Y-%m-%d %H:%M UTC")),
            ("command", command_line()),
            ("run time", f"{elapsed:.0f} s")]


def write(folder: Path, codec: "Codec", settings: "Settings", clips: Sequence["Clip"],
          rows: Sequence["Row"], summary: "Summary", elapsed: float) -> Path:
    """The page over the clips' files, which the run already wrote into `folder`."""
    note = None if settings.opus_kbps else \
        "Opus was not run (--no-opus): the clips hold the source and apcodec only."
    return write_page(folder, [dataclasses.asdict(c) for c in clips], rows, summary,
                      settings_table(codec, settings, elapsed, len(clips)),
                      settings.listened, note)


def describe(report: str) -> str:
    """'apcodec: listening report DIR/index.html (13 files, 1.2 MB)'."""
    files = [p for p in Path(report).rglob("*") if p.is_file()]
    megabytes = sum(p.stat().st_size for p in files) / 1e6
    return (f"apcodec: listening report {Path(report) / PAGE} ({len(files)} files, "
            f"{megabytes:.1f} MB)")
