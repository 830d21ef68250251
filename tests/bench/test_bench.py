"""`apcodec bench`: a quick smoke run with tiny weights, and its building blocks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import soundfile as sf

from apcodec_cli.bench import measure, run
from apcodec_cli.bench.cli import _seconds
from apcodec_cli.cli.main import main

from helpers import invoke


def test_durations_parse() -> None:
    assert _seconds("10, 90s,10m,1h") == (10.0, 90.0, 600.0, 3600.0)


def test_made_audio_has_the_asked_length(tmp_path: Path) -> None:
    run.make_audio(tmp_path / "a.wav", 0.25, None)
    info = sf.info(str(tmp_path / "a.wav"))
    assert (info.samplerate, info.channels, info.frames) == (48_000, 1, 12_000)


def test_child_peak_memory_is_its_own(tmp_path: Path) -> None:
    # The parent (pytest with torch) is far bigger than a bare interpreter: the figure must
    # be the child's, not a copy of the parent's.
    small = measure.run_process([sys.executable, "-S", "-c", "print('hi')"])
    assert small.stdout.strip() == "hi" and 0 < small.peak_mb < 60
    big = measure.run_process([sys.executable, "-S", "-c", "b = bytearray(200 << 20)"])
    assert big.peak_mb > 200
    with pytest.raises(measure.ProcessFailed, match="exited with 3"):
        measure.run_process([sys.executable, "-S", "-c", "raise SystemExit(3)"])


def test_bench_smoke(tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = invoke(main, "bench", "--weights", tiny_weights, "--seconds", "0.5", "--threads",
                    "1", "--no-cuda", "--baseline-seconds", "0.5", "--baseline-preset", "tiny",
                    "-q", "--json-out", out, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "| 0.5 s | apcodec CPU | 1 |" in result.output
    assert "Baseline: whole-signal forward pass of `tiny`" in result.output
    report = json.loads(out.read_text())
    row = report["rows"][0]
    assert row["encode_s"] > 0 and row["decode_peak_mb"] > 50
    assert 0 < row["encode_efficiency"] < 1
    assert report["model_gflop_per_audio_second"]["decode"] > 0
    assert report["baseline"]["speed_up"] > 0
