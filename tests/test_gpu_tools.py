"""The GPU measuring tools of docs/gpu.md run end to end on the CPU: scripts/gpu_checks.py
(codes and audio of one device against the CPU's) and scripts/folder_speed.py (a timed folder
conversion), with the tiny random weights, so that they work when a GPU is at hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow  # a few Python processes, each importing torch


def _run(script: str, *args: object, env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, f"scripts/{script}", *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def env(tiny_weights: Path, tiny_stream_weights: Path) -> dict[str, str]:
    # Tiny models gain nothing from threads, which only spin on a busy machine.
    return {**os.environ, "APCODEC_WEIGHTS": str(tiny_weights),
            "APCODEC_STREAM_WEIGHTS": str(tiny_stream_weights), "OMP_NUM_THREADS": "1"}


def test_the_cuda_checks_run_on_the_cpu(env: dict[str, str], tmp_path: Path) -> None:
    _run("gpu_checks.py", "--out", tmp_path, "--device", "cpu", "--seconds", "0.5", env=env)
    checks = json.loads((tmp_path / "checks.json").read_text())
    assert "stream_file_vs_array_snr_db" in checks


def test_the_folder_timing_runs_on_the_cpu(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "folder.json"
    _run("folder_speed.py", "--out", out, "--device", "cpu", "--minutes", "0.02", "--files", "2",
         "--variants", "32/fp32", "--no-startup", env=env)
    folder = json.loads(out.read_text())
    assert folder["encode rows=32 fp32"]["x_real_time"] > 0, folder
    assert folder["decode rows=32 fp32"]["x_real_time"] > 0, folder
