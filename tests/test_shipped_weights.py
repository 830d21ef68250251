"""The shipped default weights: they load, are marked trained, and code real audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from apcodec_cli.format.audio import read_blocks
from apcodec_cli.codec import Codec
from apcodec_cli.models import releases

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = releases.newest(False, [ROOT / "weights"]).path
STREAMABLE = releases.newest(True, [ROOT / "weights"]).path

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


def test_bf16_codes_and_decodes_like_float32(one_thread) -> None:
    """What `--precision bf16` (auto, on CPUs with bf16 instructions) changes: a few codes
    (the quantizer itself stays float32) and the decoded signal far below coding error."""
    if not SHIPPED.is_file():
        pytest.skip(f"no shipped {SHIPPED.name}")
    fp32 = Codec.load(SHIPPED, device="cpu", precision="fp32")
    bf16 = Codec.load(SHIPPED, device="cpu", precision="bf16")
    assert bf16.bf16 and not fp32.bf16
    _, _, blocks = read_blocks(str(ROOT / "samples" / "speech.flac"), 48000, mono=True)
    wav = np.concatenate(list(blocks), axis=1)[:, 48000:144000]
    codes = fp32.encode(wav)
    # bf16 really ran. Share of codes agreeing on these 2 s: 0.978 for the step-18 034
    # weights, 0.895 for the GPU-trained ones of 2026-12-04.
    assert 0.85 < np.mean(bf16.encode(wav) == codes) < 1.0
    reference, audio = fp32.decode(codes), bf16.decode(codes)
    snr = 10 * np.log10(np.sum(reference ** 2) / np.sum((audio - reference) ** 2))
    assert 35 < snr < 120
