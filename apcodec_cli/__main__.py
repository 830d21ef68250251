"""`python -m apcodec_cli` is the `apcodec` command."""

from .cli import entry

entry()
