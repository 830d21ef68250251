"""The `apcodec` command: click group, conversions, batches, shards, summaries, `info`, `models`.

`main.entry` is the console script. `entry` is also found here, loaded on use, for an
installation whose entry point still names `apcodec_cli.cli:entry`.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "entry":
        from .main import entry

        return entry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
