"""Shared fixtures: tiny random-weights models (fast, CPU), the `apcodec` command run in
this process, the `gpu` marker's skip without CUDA. Plain helpers are in `helpers.py`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import Result

from apcodec_cli.cli.main import main
from apcodec_cli.codec import Codec
from apcodec_cli.io import weights
from helpers import invoke, make_weights


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `gpu` need CUDA: without it they are skipped, so the suite stays CPU-only."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (run `pytest -m gpu` on a GPU)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def float32_unless_asked():
    """The default precision, auto, is bf16 on some CPUs and float32 on others: tests hold
    the float32 tolerances everywhere, and bf16 has tests of its own."""
    patch = pytest.MonkeyPatch()
    patch.setenv(weights.PRECISION_ENV, "fp32")
    yield
    patch.undo()


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and threads spin badly on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_weights(tmp_path_factory.mktemp("weights") / "tiny.pt")


@pytest.fixture(scope="session")
def tiny_stream_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Untrained weights of the tiny streamable (causal) model."""
    return make_weights(tmp_path_factory.mktemp("weights") / "tiny-s.pt", preset="tiny-s")


@pytest.fixture(scope="session")
def codec(tiny_weights: Path) -> Codec:
    return Codec.load(tiny_weights, device="cpu")


@pytest.fixture
def cli():
    """Run the `apcodec` command in this process: `cli("encode", path, ..., input=b"...")`
    gives click's Result (stdout and stderr apart); arguments may be paths."""
    def run(*args: object, input: bytes | None = None) -> Result:
        return invoke(main, *args, input=input)

    return run
