"""`--shard auto`: the share of a task from a Slurm array's or an Indexed Job's variables."""

from __future__ import annotations

import pytest

from apcodec_cli.cli.shard import ShardError, from_environment, parse_shard
from helpers import write_audio


def _slurm(task: int, first: int, last: int, step: int | None = None,
           count: bool = True) -> dict[str, str]:
    """The variables Slurm sets in task `task` of `--array=first-last[:step]`."""
    env = {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_MIN": str(first),
           "SLURM_ARRAY_TASK_MAX": str(last)}
    if step is not None:
        env["SLURM_ARRAY_TASK_STEP"] = str(step)
    if count:
        env["SLURM_ARRAY_TASK_COUNT"] = str(len(range(first, last + 1, step or 1)))
    return env


@pytest.mark.parametrize("first, last, step", [(0, 7, None), (1, 8, 1), (100, 114, 2),
                                               (3, 3, None), (5, 20, 5)])
@pytest.mark.parametrize("count", [True, False])
def test_every_task_of_a_slurm_array_gets_its_own_share(first, last, step, count) -> None:
    tasks = range(first, last + 1, step or 1)
    shares = [from_environment(_slurm(t, first, last, step, count)) for t in tasks]
    assert shares == [(k, len(tasks)) for k in range(1, len(tasks) + 1)]


@pytest.mark.parametrize("env, message", [
    ({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "5",
      "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_STEP": "1"}, "evenly spaced"),  # 1,2,5
    (_slurm(4, 1, 7, step=2), "evenly spaced"),  # not a task of 1-7:2
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"}, "SLURM_ARRAY_TASK_MIN"),
    ({**_slurm(3, 1, 4), "SLURM_ARRAY_TASK_ID": "3a"}, "'3a' is not a whole number"),
    ({**_slurm(3, 1, 4), "SLURM_ARRAY_TASK_COUNT": "-4"}, "is not a whole number"),
    ({**_slurm(3, 1, 4), "SLURM_ARRAY_TASK_STEP": "0"}, "evenly spaced"),
    ({"JOB_COMPLETION_INDEX": "0"}, "APCODEC_SHARD_COUNT is not"),
    ({"JOB_COMPLETION_INDEX": "4", "APCODEC_SHARD_COUNT": "4"}, "needs APCODEC_SHARD_COUNT > 4"),
    ({"JOB_COMPLETION_INDEX": "x", "APCODEC_SHARD_COUNT": "4"}, "not a whole number"),
    ({"JOB_COMPLETION_INDEX": "1", "APCODEC_SHARD_COUNT": "four"}, "not a whole number"),
    ({**_slurm(1, 1, 2), "JOB_COMPLETION_INDEX": "0"}, "found both"),
    ({"APCODEC_SHARD_COUNT": "4", "PARALLEL_SEQ": "2"}, "found no scheduler"),
])
def test_a_missing_or_malformed_variable_is_an_error_that_names_it(env, message) -> None:
    with pytest.raises(ShardError, match=message):
        from_environment(env)


def test_indexed_jobs_count_from_zero_and_explicit_shares_are_checked() -> None:
    counts = {"APCODEC_SHARD_COUNT": "3"}
    assert [from_environment({**counts, "JOB_COMPLETION_INDEX": str(i)}) for i in range(3)] \
        == [(1, 3), (2, 3), (3, 3)]
    assert parse_shard("Auto", {"JOB_COMPLETION_INDEX": "1", **counts}) == (2, 3)
    assert parse_shard("2/8", {}) == (2, 8)
    for text in ("0/8", "9/8", "2/", "auto2"):
        with pytest.raises(ShardError):
            parse_shard(text, {})


def test_shard_auto_is_a_usage_error_without_a_scheduler(run, tmp_path, monkeypatch) -> None:
    for name in ("SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "src").mkdir()
    write_audio(tmp_path / "src" / "a.wav", 0.1)
    result = run("encode", "--shard", "auto", tmp_path / "src", tmp_path / "out")
    assert result.exit_code == 2 and "found no scheduler" in result.stderr
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    monkeypatch.setenv("APCODEC_SHARD_COUNT", "x")
    result = run("encode", "--shard", "auto", tmp_path / "src", tmp_path / "out")
    assert result.exit_code == 2 and "APCODEC_SHARD_COUNT='x'" in result.stderr
    assert not (tmp_path / "out").exists()
    monkeypatch.setenv("APCODEC_SHARD_COUNT", "2")
    for index in ("0", "1"):
        monkeypatch.setenv("JOB_COMPLETION_INDEX", index)
        assert run("encode", "-q", "--shard", "auto", tmp_path / "src", tmp_path / "out"
                   ).exit_code == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.apc"]
