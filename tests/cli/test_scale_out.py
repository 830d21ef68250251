"""The recipes of docs/scale-out/, run as the schedulers would run them: N processes, each
with the variables its engine sets, on a few tiny files with tiny weights.

Each batch must come out whole: every task plans and converts only its share, the shares
do not overlap, their union is every input, and `apcodec batch-status` (the command the
recipe names) agrees. A task killed in the middle of its share, then run again, completes
the batch. docs/scale-out.md must show each recipe file exactly as it is.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from apcodec_cli.cli.shard import shard_of
from helpers import command_shims, partials, write_audio

RECIPES = Path(__file__).parents[2] / "docs" / "scale-out"


def _names() -> list[str]:
    """Inputs, some in a sub-folder, some FLAC, that give every share of 2, 3 or 4 a file."""
    names, need = [], {(k, n) for n in (2, 3, 4) for k in range(1, n + 1)}
    for i in itertools.count():
        name = f"{'c/' if i % 2 else ''}t{i}.{'flac' if i % 3 == 2 else 'wav'}"
        covers = {(shard_of(str(Path(name).with_suffix(".apc")), n), n) for n in (2, 3, 4)}
        if covers & need:
            names.append(name)
            need -= covers
        if not need:
            return names


NAMES = _names()

pytestmark = pytest.mark.slow


@pytest.fixture
def batch(tmp_path: Path, tiny_weights: Path) -> tuple[Path, dict[str, str]]:
    """A folder holding music/ (the inputs), and the environment of the tasks."""
    for name in NAMES:
        (tmp_path / "music" / name).parent.mkdir(parents=True, exist_ok=True)
        write_audio(tmp_path / "music" / name, 0.1)
    env = command_shims(tmp_path / "bin")
    env.update(APCODEC_WEIGHTS=str(tiny_weights), OMP_NUM_THREADS="1")
    return tmp_path, env


def _expected() -> set[str]:
    return {str(Path(n).with_suffix(".apc")) for n in NAMES}


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _check_whole(root: Path, env: dict[str, str], summaries: list[Path], status: str) -> None:
    """Every task planned and converted its own share only, together every input; the
    status command (`status`, a line of the recipe) says the batch is complete."""
    planned = [{r["name"] for r in _records(s) if r["status"] == "planned"} for s in summaries]
    done = [{r["name"] for r in _records(s) if r["status"] == "done"} for s in summaries]
    assert sum(map(len, planned)) == len(set().union(*planned)), "shares overlap"
    assert set().union(*done) == set().union(*planned) == _expected()
    assert {p.relative_to(root / "codes").as_posix() for p in (root / "codes").rglob("*.apc")
            } == _expected()
    result = subprocess.run(shlex.split(status), cwd=root, env=env, capture_output=True,
                            text=True)
    assert result.returncode == 0 and ": complete" in result.stdout, result.stdout


def _status_line(recipe: Path) -> str:
    """The `apcodec batch-status` command that a recipe's comments tell the user to run."""
    return re.search(r"^#\s+(apcodec batch-status .*)$", recipe.read_text(), re.M).group(1)


def _slurm_task(root: Path, env: dict[str, str], job: int, array: range, task: int,
                **popen) -> subprocess.Popen:
    """Task `task` of `sbatch --array=A-B:S --cpus-per-task=1 slurm.sh music/ codes/`."""
    variables = {"SLURM_ARRAY_JOB_ID": str(job), "SLURM_ARRAY_TASK_ID": str(task),
                 "SLURM_ARRAY_TASK_MIN": str(array[0]), "SLURM_ARRAY_TASK_MAX": str(array[-1]),
                 "SLURM_ARRAY_TASK_STEP": str(array.step),
                 "SLURM_ARRAY_TASK_COUNT": str(len(array)), "SLURM_CPUS_PER_TASK": "1"}
    return subprocess.Popen(["bash", str(RECIPES / "slurm.sh"), "music/", "codes/"], cwd=root,
                            env={**env, **variables}, **popen)


def test_a_slurm_array_converts_every_file_once(batch) -> None:
    root, env = batch
    directives = re.findall(r"^#SBATCH (--[\w-]+)=(\S+)", (RECIPES / "slurm.sh").read_text(), re.M)
    assert re.fullmatch(r"\d+-\d+", dict(directives)["--array"])
    array = range(3, 8, 2)  # sbatch --array=3-7:2: tasks 3, 5, 7 are shards 1, 2, 3 of 3
    tasks = [_slurm_task(root, env, 4242, array, task) for task in array]
    assert [t.wait(timeout=300) for t in tasks] == [0, 0, 0]
    summaries = [root / "summaries" / f"4242_{task}.jsonl" for task in array]
    assert [{r["shard"] for r in _records(s)} for s in summaries] == [{"1/3"}, {"2/3"}, {"3/3"}]
    _check_whole(root, env, summaries, _status_line(RECIPES / "slurm.sh"))


def test_a_killed_slurm_task_run_again_completes_the_batch(batch) -> None:
    root, env = batch
    # Task 1 of --array=1-2 (shard 1/2) gets a long file after a short one: killed while
    # it codes the long one, it has finished a file and left others unfinished.
    short, long = [n for n in (f"k{i:02d}" for i in range(100)) if shard_of(f"{n}.apc", 2) == 1][:2]
    write_audio(root / "music" / f"{short}.wav", 0.1)
    write_audio(root / "music" / f"{long}.wav", 60.0)
    summary = root / "summaries" / "500_1.jsonl"
    task = _slurm_task(root, env, 500, range(1, 3), 1, start_new_session=True,
                       stderr=subprocess.DEVNULL)
    _wait_for(lambda: (f"{short}.apc", "done") in _ended(summary), task)
    os.killpg(task.pid, signal.SIGKILL)
    assert task.wait(timeout=60) == -signal.SIGKILL
    assert _slurm_task(root, env, 500, range(1, 3), 2).wait(timeout=300) == 0
    status = subprocess.run(shlex.split(_status_line(RECIPES / "slurm.sh")), cwd=root, env=env,
                            capture_output=True, text=True)
    assert status.returncode == 1
    assert f"unfinished  music/{long}.wav" in status.stdout
    assert "the task of shard 1/2" in status.stdout
    assert partials(root / "codes")  # the killed task's temporary file is still there
    # Submitted again (a new array job): the task skips what it finished and does the rest.
    assert _slurm_task(root, env, 501, range(1, 3), 1).wait(timeout=300) == 0
    assert '"skipped"' in (root / "summaries" / "501_1.jsonl").read_text()
    assert not partials(root / "codes")
    expected = _expected() | {f"{short}.apc", f"{long}.apc"}
    assert {p.relative_to(root / "codes").as_posix() for p in (root / "codes").rglob("*.apc")
            } == expected
    status = subprocess.run(shlex.split(_status_line(RECIPES / "slurm.sh")), cwd=root, env=env,
                            capture_output=True, text=True)
    assert status.returncode == 0, status.stdout


def _ended(summary: Path) -> set[tuple[str, str]]:
    """(name, status) of the lines a running task has written whole."""
    if not summary.exists():
        return set()
    lines = summary.read_text().split("\n")[:-1]  # the last one may be half written
    return {(r["name"], r["status"]) for r in map(json.loads, lines)}


def _wait_for(condition, process: subprocess.Popen, seconds: float = 120) -> None:
    end = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, "the task ended before it could be killed"
        assert time.monotonic() < end, "the task did not get going"
        time.sleep(0.02)


def test_a_kubernetes_indexed_job_converts_every_file_once(batch) -> None:
    root, env = batch
    job = yaml.safe_load((RECIPES / "indexed-job.yaml").read_text())
    spec, (container,) = job["spec"], job["spec"]["template"]["spec"]["containers"]
    assert spec["completionMode"] == "Indexed"
    variables = {e["name"]: e["value"] for e in container["env"]}
    assert variables["APCODEC_SHARD_COUNT"] == str(spec["completions"])
    assert container["workingDir"] == "/data"  # here: `root`, which holds music/
    pods = [subprocess.Popen(container["command"] + container["args"], cwd=root,
                             env={**env, **variables, "OMP_NUM_THREADS": "1",
                                  "JOB_COMPLETION_INDEX": str(i)})
            for i in range(spec["completions"])]
    assert [p.wait(timeout=300) for p in pods] == [0] * spec["completions"]
    summaries = [root / "summaries" / f"{i}.jsonl" for i in range(spec["completions"])]
    _check_whole(root, env, summaries, _status_line(RECIPES / "indexed-job.yaml"))


@pytest.mark.skipif(shutil.which("parallel") is None, reason="GNU parallel is not installed")
def test_gnu_parallel_converts_every_file_once(batch) -> None:
    root, env = batch
    (root / "hosts.txt").write_text(":\n")  # ':' is this machine, in GNU parallel's terms
    result = subprocess.run(["sh", str(RECIPES / "parallel.sh")], cwd=root, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    shares = re.search(r":::((?: \d+)+)", (RECIPES / "parallel.sh").read_text()).group(1).split()
    summaries = [root / "summaries" / f"{k}.jsonl" for k in shares]
    _check_whole(root, env, summaries, _status_line(RECIPES / "parallel.sh"))


def test_the_guide_shows_every_recipe_as_it_is() -> None:
    guide = (RECIPES.parent / "scale-out.md").read_text()
    for recipe in sorted(RECIPES.iterdir()):
        shown = re.search(rf"\[`docs/scale-out/{recipe.name}`\].*?\n```\w*\n(.*?)```", guide,
                          re.S)
        assert shown, f"docs/scale-out.md does not show {recipe.name}"
        assert shown.group(1) == recipe.read_text(), f"{recipe.name} differs from the guide"
