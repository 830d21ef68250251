"""`python -m apcodec_cli` is the `apcodec` command."""

from .cli.main import entry

if __name__ == "__main__":  # not when a spawned worker process prepares its main module
    entry()
