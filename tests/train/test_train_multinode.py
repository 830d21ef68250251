"""Training across machines as docs/scale-out.md shows it: docs/scale-out/train-node.sh run
as two "nodes" of one process each on this machine, meeting through torchrun's c10d
rendezvous and training the tiny preset over gloo."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from apcodec_cli.io import weights
from apcodec_cli.train.checkpoint import STATE_NAME, load_state
from helpers import command_shims

from test_train import data_dir  # noqa: F401  (the fixture: five loud clips, one silent)

SCRIPT = Path(__file__).parents[2] / "docs" / "scale-out" / "train-node.sh"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_meet_at_a_rendezvous_and_train_together(data_dir: Path,  # noqa: F811
                                                           tmp_path: Path) -> None:
    env = command_shims(tmp_path / "bin")
    env.update(NNODES="2", NPROC="1", RDZV_ENDPOINT=f"127.0.0.1:{_free_port()}",
               RDZV_ID="two-nodes", OMP_NUM_THREADS="1")
    run_dir = tmp_path / "run"
    args = ["--data", str(data_dir), "--run-dir", str(run_dir), "--preset", "tiny",
            "--max-steps", "3", "--device", "cpu", "--workers", "0", "--quiet"]
    nodes = [subprocess.Popen(["sh", str(SCRIPT), *args], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [node.communicate(timeout=300)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(outputs)
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    start, stop = log[0], log[-1]
    assert start["event"] == "start" and start["env"]["world_size"] == 2
    assert stop["event"] == "stop" and stop["step"] == 3 and stop["reason"] == "done"
    assert [r["step"] for r in log if r["event"] == "train"] == [1, 2, 3]
    assert load_state(run_dir / STATE_NAME)["step"] == 3
    assert weights.load(stop["weights"]).fingerprint.hex() == stop["fingerprint"]
