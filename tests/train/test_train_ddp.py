"""Training under DDP on the CPU: two gloo processes on the tiny preset.

One pair of spawned processes runs three trainings in its process group: 4 steps straight,
then 2 steps and a resume to 4. The discriminators join at step 2 (`gan_start`), so the
resumed half starts with them; codebooks are re-seeded at steps 0 and 3 (`revive_every`
3: the reviver's all-reduce of the counts and its broadcast of the new entries). The
replicas must stay identical, and the resumed run must equal the straight one.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from apcodec_cli.train import distributed
from apcodec_cli.train.checkpoint import STATE_NAME, load_state
from apcodec_cli.train.config import get_train_preset
from apcodec_cli.train.loop import RunOptions, _Run

from test_train import data_dir  # noqa: F401  (the fixture: five loud clips, one silent)

WORLD = 2
CONFIG = get_train_preset("tiny").override(
    {"batch_size": "4", "gan_start": "2", "revive_every": "3", "save_every": "100"})

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, data: Path, root: Path) -> None:
    """Rank `rank` of the two: the three trainings; its replicas' weights saved per run."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    process = distributed.start("cpu")
    try:
        for name, config, steps, resume in (("whole", CONFIG, 4, False),
                                            ("parts", CONFIG, 2, False),
                                            ("parts", None, 4, True)):
            options = RunOptions(data, root / name, resume=resume, device="cpu",
                                 max_steps=steps, workers=0, quiet=True)
            run = _Run(config, options, process)
            revived: list[int] = []
            update = run.trainer.reviver.update
            run.trainer.reviver.update = lambda out, step: revived.append(update(out, step)) \
                or revived[-1]
            run.execute()
            if rank == 0:  # the state as saved, before a later run overwrites it
                shutil.copy(root / name / STATE_NAME, root / f"{name}-{steps}-state.pt")
            torch.save({"generator": run.trainer.codec.state_dict(),
                        "discriminators": run.trainer.disc.state_dict(),
                        "revived": revived},
                       root / f"{name}-{steps}-rank{rank}.pt")
    finally:
        distributed.stop(process)


def _equal(a: dict, b: dict) -> list[str]:
    """Names of the tensors that differ between two state dicts."""
    return [name for name in a if not torch.equal(a[name], b[name])]


def _losses(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k.startswith("loss_") or k == "step"}
            for r in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines())
            if r["event"] == "train"]


def test_two_gloo_processes_train_in_step_and_resume_exactly(data_dir: Path,  # noqa: F811
                                                            tmp_path: Path) -> None:
    mp.start_processes(_worker, (_free_port(), data_dir, tmp_path), nprocs=WORLD,
                       start_method="spawn")
    for run in ("whole-4", "parts-2", "parts-4"):
        rank0, rank1 = (torch.load(tmp_path / f"{run}-rank{r}.pt") for r in range(WORLD))
        for part in ("generator", "discriminators"):
            assert not _equal(rank0[part], rank1[part]), f"{run}: replicas differ"
    whole, parts = (torch.load(tmp_path / f"{run}-rank0.pt") for run in ("whole-4", "parts-4"))
    assert whole["revived"][0] > 0 and whole["revived"][3] > 0  # seeded, then re-seeded
    assert parts["revived"][1] > 0  # the resumed half re-seeded at step 3 too
    for part in ("generator", "discriminators"):
        assert not _equal(whole[part], parts[part]), f"resumed {part} differ"
    # Saved at step 2, the codebook usage since the check of step 0 is that of step 1 on
    # both processes: every code of its batch (B crops of 5 frames, each stage) is counted.
    counts = load_state(tmp_path / "parts-2-state.pt")["reviver"]["counts"]
    frames = CONFIG.batch_size * CONFIG.segment // CONFIG.codec.samples_per_frame
    assert counts.sum(dim=1).tolist() == [frames] * CONFIG.codec.n_codebooks
    saved = load_state(tmp_path / "whole-4-state.pt"), load_state(tmp_path / "parts-4-state.pt")
    assert saved[0]["step"] == saved[1]["step"] == 4
    assert _losses(tmp_path / "whole") == _losses(tmp_path / "parts")
    assert _losses(tmp_path / "whole")[-1]["loss_discriminator"] > 0  # the discriminators trained
