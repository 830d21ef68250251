"""The diagnostic: every system's scores, the artefacts and the tones, from any weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import invoke, script

diagnose = script("diagnose").main

pytestmark = pytest.mark.usefixtures("one_thread")


def test_diagnose_prints_systems_artefacts_and_tones(tiny_weights: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from apcodec_cli.evaluate import metrics

    monkeypatch.setattr(metrics, "visqol", lambda ref, deg, rate: 3.0)  # no ViSQOL needed
    monkeypatch.setitem(metrics.METRICS, "visqol", metrics.visqol)
    t = np.arange(48_000) / 48_000
    sf.write(tmp_path / "a.flac", 0.3 * np.sin(2 * np.pi * 330 * t), 48_000)
    result = invoke(diagnose, "--weights", tiny_weights, "--data", tmp_path,
                    "--category", "music", "--seconds", 1, "-q")
    assert result.exit_code == 0, result.output
    for text in ("| codec |", "| true-phase |", "hop lines dB", "code lines dB",
                 "quiet floor dB", "band lost kHz", "### music: peaks against their chance level",
                 "six random bins dB", "### tones at -20 dBFS",
                 "| tone_8k |", "| sweep |"):
        assert text in result.output, text
