"""Fixtures of the command-line tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def run(cli, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch):
    """`cli` (tests/conftest.py) with the tiny random weights installed as the default
    ($APCODEC_WEIGHTS): `run("encode", "-q", source, target).exit_code`."""
    monkeypatch.setenv("APCODEC_WEIGHTS", str(tiny_weights))
    return cli
