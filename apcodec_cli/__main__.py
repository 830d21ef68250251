"""`python -m apcodec_cli` is the `apcodec` command."""

from .cli import entry

if __name__ == "__main__":  # not when a spawned worker process prepares its main module
    entry()
