"""The shipped default weights: they load, are marked trained, and code real audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from apcodec_cli.audio import read_blocks
from apcodec_cli.codec import Codec
from apcodec_cli.weights import DEFAULT_NAME, STREAM_NAME

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "weights" / DEFAULT_NAME
STREAMABLE = ROOT / "weights" / STREAM_NAME

pytestmark = pytest.mark.weights


def _log_spectrum(x: np.ndarray) -> np.ndarray:
    frames = np.lib.stride_tricks.sliding_window_view(x, 2048)[::1024] * np.hanning(2048)
    return np.log(np.abs(np.fft.rfft(frames, axis=1)) + 1e-4)


@pytest.mark.parametrize("path, causal", [(SHIPPED, False), (STREAMABLE, True)],
                         ids=["full", "streamable"])
def test_shipped_weights_code_the_sample(one_thread, path: Path, causal: bool) -> None:
    if not path.is_file():
        pytest.skip(f"no shipped {path.name}")
    codec = Codec.load(path, device="cpu")
    assert codec.weights.trained and codec.config.bitrate == 6000
    assert codec.config.causal == causal
    _, _, blocks = read_blocks(str(ROOT / "samples" / "speech.flac"), 48000, mono=True)
    wav = np.concatenate(list(blocks), axis=1)[:, 48000:144000]  # 2 s of speech
    decoded = codec.decode(codec.encode(wav))[:, :wav.shape[1]]  # streamable: + 1 frame
    assert decoded.shape == wav.shape
    # Trained weights follow the input's spectrum far better than silence does.
    error = np.mean(np.abs(_log_spectrum(decoded[0]) - _log_spectrum(wav[0])))
    silence = np.mean(np.abs(_log_spectrum(np.zeros_like(wav[0])) - _log_spectrum(wav[0])))
    assert error < 0.5 * silence
