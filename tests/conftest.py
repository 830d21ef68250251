"""Shared fixtures: a tiny random-weights model (fast, CPU) and synthetic audio files; the
`gpu` marker's skip without CUDA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from apcodec_cli.io import weights
from apcodec_cli.codec import Codec
from apcodec_cli.nn.config import get_preset
from apcodec_cli.nn.model import APCodec


def make_weights(path: Path, seed: int = 0, grn: bool = True, preset: str = "tiny") -> Path:
    """Write untrained tiny weights; with `grn`, give GRN non-zero weights as training does
    (at initialisation GRN is the identity, which would hide its whole-signal statistics)."""
    torch.manual_seed(seed)
    model = APCodec(get_preset(preset))
    if grn:
        for name, param in model.named_parameters():
            if ".grn." in name:
                param.data.normal_(0.0, 0.5)
    weights.save(path, model, trained=False)
    return path


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


def tone(seconds: float, rate: int = 48_000, channels: int = 1, seed: int = 0) -> np.ndarray:
    """(channels, samples) test signal: a chord plus a little noise, peak about 0.5."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    out = []
    for c in range(channels):
        x = sum(0.15 * np.sin(2 * np.pi * f * (c + 1) * t) for f in (220.0, 330.0, 440.0))
        out.append(x + 0.02 * rng.standard_normal(t.size))
    return np.asarray(out, dtype=np.float32)


def write_audio(path: Path, seconds: float, rate: int = 48_000, channels: int = 1,
                subtype: str = "PCM_16") -> np.ndarray:
    audio = tone(seconds, rate, channels)
    sf.write(path, audio.T, rate, subtype=subtype)
    return audio
