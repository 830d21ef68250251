"""Click parameter types and decorators shared by the commands (click only: cheap to import)."""

from __future__ import annotations

import functools
import math
import signal
import sys
from typing import Any, Callable

import click


class Seconds(click.ParamType):
    """A time in seconds: a finite number >= 0 (not nan, not inf)."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds) or seconds < 0:
            self.fail(f"{value!r} is not a time: give a finite number of seconds >= 0",
                      param, ctx)
        return seconds


class Device(click.ParamType):
    """auto, cpu, cuda or cuda:N (whether that device exists is checked when used)."""

    name = "device"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> str:
        text = str(value).strip().lower()
        head, _, index = text.partition(":")
        if text in ("auto", "cpu", "cuda") or (head == "cuda" and index.isdigit()):
            return text
        self.fail(f"{value!r} is not a device: use auto, cpu, cuda or cuda:N", param, ctx)


DEVICE_HELP = "Where the model runs: auto (CUDA if present), cpu, cuda or cuda:N."


def stoppable(command: Callable[..., None]) -> Callable[..., None]:
    """Exit 130 on Ctrl-C and 143 on SIGTERM, with one line on stderr; partial outputs are
    removed on the way out (see runtime.py). When stdout's reader has gone, exit 141
    (128 + SIGPIPE) without a word, as `cat` does."""
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        from .runtime import Interrupted, exit_status, sigterm_raises

        try:
            with sigterm_raises():
                command(*args, **kwargs)
        except (KeyboardInterrupt, Interrupted) as stop:
            if getattr(stop, "signum", None) == signal.SIGPIPE:  # reader gone: quietly
                sys.exit(exit_status(stop))
            reason = "interrupted" if isinstance(stop, KeyboardInterrupt) else str(stop)
            click.echo(f"\napcodec: {reason}; no partial output is left", err=True)
            sys.exit(exit_status(stop))
    return wrapper
