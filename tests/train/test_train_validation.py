"""Training validation: clips per category, level error, perceptual metrics per category."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from apcodec_cli.nn.config import get_preset
from apcodec_cli.nn.model import APCodec
from apcodec_cli.train.data import Clip
from apcodec_cli.train import validation
from apcodec_cli.evaluate.metrics import level_db
from apcodec_cli.train.validation import load_validation, validate


def test_level_error_of_a_scaled_signal() -> None:
    x = np.random.default_rng(0).standard_normal(48_000)
    assert level_db(x, 0.5 * x) == pytest.approx(-6.0206, abs=1e-3)
    assert math.isnan(level_db(np.zeros(100), x[:100]))


def test_validation_clips_are_chosen_per_category(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validation, "read_clip", lambda clip: np.ones(clip.frames, np.float32))
    clips = ([Clip(f"s{i}", 0, 4800, "validation", category="speech") for i in range(5)]
             + [Clip(f"m{i}", 0, 4800, "validation", category="music") for i in range(3)]
             + [Clip("t", 0, 4800, "train", category="music")])
    chosen = load_validation(clips, 2, 0.05, 320)
    assert [c.category for c in chosen] == ["music", "music", "speech", "speech"]
    assert all(c.wav.shape == (1, 1, 2240) for c in chosen)  # 0.05 s cut to whole frames


def test_speech_metrics_only_on_speech(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake(name: str, value: float):
        def metric(ref: np.ndarray, deg: np.ndarray, rate: int) -> float:
            calls.append(name)
            return value
        return metric

    monkeypatch.setattr(validation, "CATEGORY_METRICS", {
        "speech": (("speech_pesq", fake("pesq", 2.0)), ("speech_estoi", fake("estoi", 0.5))),
        "music": (("music_visqol", fake("visqol", 3.0)),)})
    torch.manual_seed(0)
    model = APCodec(get_preset("tiny"))
    wav = 0.1 * torch.randn(1, 1, 3200)
    clips = [validation.ValidationClip(wav, "speech"), validation.ValidationClip(wav, "other")]
    result = validate(model, clips, torch.device("cpu"))
    assert calls == ["pesq", "estoi"]
    assert result.speech_pesq == 2.0 and result.speech_estoi == 0.5
    assert math.isnan(result.music_visqol)
    assert math.isfinite(result.level_db) and result.level_abs_db >= abs(result.level_db) - 1e-9
