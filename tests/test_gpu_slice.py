"""The prepared GPU slice (scripts/gpu_slice.sh) rehearsed on the CPU: `DRY_RUN=1` runs every
step of it (bench, timed folder conversion, three trainings, the gpu tests, the CUDA checks,
the summary) on the tiny preset and tiny weights, with a tiny Opus pack built here."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from apcodec_cli.io import weights
from apcodec_cli.data import corpus, manifest, pack

from helpers import write_audio

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow  # about 30 s of CPU time: 15 Python processes, run 2 to 3 at once


@pytest.fixture(scope="module")
def tiny_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pack of two 3-second training segments (the format the slice trains on)."""
    root = tmp_path_factory.mktemp("slice-data")
    (root / "audio").mkdir()
    for i in range(2):
        write_audio(root / "audio" / f"a{i}.wav", 3.0)
    for source in corpus.folder_sources(root / "audio", "speech"):
        corpus.process_source(source, root / "corpus")
    rows = [row for sidecar in corpus.load_sidecars(root / "corpus") for row in sidecar["rows"]]
    path = manifest.write_manifest(root / "corpus", rows, {r["source"]: "train" for r in rows})
    chosen = pack.select_segments(manifest.read_manifest(path), {"speech": 1.0})
    pack.write_pack(root / "corpus", chosen, root / "pack")
    return root / "pack"


def test_the_gpu_slice_rehearses_on_the_cpu(tiny_pack: Path, tiny_weights: Path,
                                            tiny_stream_weights: Path, tmp_path: Path) -> None:
    env = {**os.environ, "DRY_RUN": "1", "OUT": str(tmp_path / "out"),
           "SLICE_RUNS": str(tmp_path / "runs"), "SLICE_DATA": str(tiny_pack),
           "SLICE_PRESET": "tiny", "SLICE_INIT": "", "APCODEC_WEIGHTS": str(tiny_weights),
           "APCODEC_STREAM_WEIGHTS": str(tiny_stream_weights)}
    done = subprocess.run(["sh", "scripts/gpu_slice.sh"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == \
        ["A.pt", "B.pt", "C.pt", "logs.tar.gz", "results.json"]  # within 8 files
    results = json.loads((out / "results.json").read_text())
    assert {name: run["step"] for name, run in results["training"].items()} == \
        {"A": 2, "B": 2, "C": 2}
    assert weights.load(out / "B.pt").info["steps"] == 2
    folder = results["folder"]
    assert folder["encode rows=32 fp32"]["x_real_time"] > 0, folder
    assert folder["decode rows=32 fp32"]["x_real_time"] > 0, folder
    assert results["bench"][0]["system"] == "apcodec CPU"
    assert "stream_file_vs_array_snr_db" in results["checks"]
    assert results["tests"] and set(results["tests"].values()) == {"skipped"}  # no CUDA here
