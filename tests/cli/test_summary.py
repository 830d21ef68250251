"""`--summary` (a JSON line per file and event) and `apcodec batch-status` (the lines of a
batch's tasks, merged), in this process. Separate processes, killed tasks and the recipes
of docs/scale-out/ are in test_scale_out.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apcodec_cli.cli.shard import shard_of
from helpers import write_audio


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """src/ with a.wav, b/c.wav and a damaged bad.wav."""
    src = tmp_path / "src"
    (src / "b").mkdir(parents=True)
    write_audio(src / "a.wav", 0.1)
    write_audio(src / "b" / "c.wav", 0.1)
    (src / "bad.wav").write_bytes(b"RIFF" + bytes(40))
    return src


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_summary_says_what_was_planned_and_how_each_file_ended(run, tree, tmp_path) -> None:
    summary, out = tmp_path / "logs" / "task.jsonl", tmp_path / "out"
    assert run("encode", "-q", "--summary", summary, tree, out).exit_code == 1
    lines = _lines(summary)
    assert [(r["name"], r["status"]) for r in lines[:3]] == [
        ("a.apc", "planned"), ("b/c.apc", "planned"), ("bad.apc", "planned")]
    ended = {r["name"]: r for r in lines[3:]}
    assert sorted(ended) == ["a.apc", "b/c.apc", "bad.apc"] and len(lines) == 6
    for name in ("a.apc", "b/c.apc"):
        assert ended[name]["status"] == "done" and ended[name]["error"] is None
        assert ended[name]["bytes"] == (out / name).stat().st_size
        assert 0 < ended[name]["seconds"] < 60
        assert ended[name]["input"] == str(tree / name.replace(".apc", ".wav"))
    bad = ended["bad.apc"]
    assert bad["status"] == "failed" and bad["error"] and bad["bytes"] is None
    assert {(r["command"], r["shard"]) for r in lines} == {("encode", None)}
    # A rerun appends: the finished files are skipped, the failed one fails again.
    assert run("encode", "-q", "--summary", summary, tree, out).exit_code == 1
    assert [r["status"] for r in _lines(summary)[6:]] == ["planned"] * 3 + [
        "skipped", "skipped", "failed"]


def test_worker_processes_report_their_seconds_too(run, tree, tmp_path) -> None:
    summary = tmp_path / "task.jsonl"
    assert run("encode", "-q", "--jobs", "2", "--summary", summary, tree,
               tmp_path / "out").exit_code == 1
    ended = {r["name"]: r for r in _lines(summary) if r["status"] != "planned"}
    assert {n: r["status"] for n, r in ended.items()} == {
        "a.apc": "done", "b/c.apc": "done", "bad.apc": "failed"}
    assert ended["a.apc"]["seconds"] > 0 and ended["b/c.apc"]["seconds"] > 0
    assert ended["bad.apc"]["seconds"] >= 0  # it ran, and failed at once


def test_batch_status_names_failures_and_a_rerun_completes_the_batch(run, tree,
                                                                     tmp_path) -> None:
    out, logs = tmp_path / "out", tmp_path / "logs"
    for k in (1, 2):
        run("encode", "-q", "--shard", f"{k}/2", "--summary", logs / f"{k}.jsonl", tree, out)
    status = run("batch-status", logs, "--inputs", tree)
    assert status.exit_code == 1
    failed = [line for line in status.stdout.splitlines() if line.startswith("failed")]
    assert len(failed) == 1 and "bad.wav" in failed[0]
    assert f"shard {shard_of('bad.apc', 2)}/2" in failed[0]
    assert "3 outputs: 2 converted, 0 already there, 1 failed" in status.stdout
    assert f"the task of shard {shard_of('bad.apc', 2)}/2" in status.stdout
    report = json.loads(run("batch-status", "--json", logs / "1.jsonl", logs / "2.jsonl").stdout)
    assert report["complete"] is False and [r["name"] for r in report["failed"]] == ["bad.apc"]
    write_audio(tree / "bad.wav", 0.1)  # mended; the task that failed runs again
    k = shard_of("bad.apc", 2)
    assert run("encode", "-q", "--shard", f"{k}/2", "--summary", logs / f"{k}.jsonl", tree,
               out).exit_code == 0
    status = run("batch-status", logs, "--inputs", tree)
    assert status.exit_code == 0, status.stdout
    assert "3 outputs: 3 converted, 0 already there, 0 failed, 0 unfinished, 0 missing: " \
           "complete" in status.stdout


def test_batch_status_finds_inputs_no_task_planned(run, tree, tmp_path) -> None:
    (tree / "bad.wav").unlink()
    k = shard_of("a.apc", 2)
    new = next(f"new{i}" for i in range(100) if shard_of(f"new{i}.apc", 2) != k)
    write_audio(tree / f"{new}.wav", 0.1)
    logs = tmp_path / "logs"
    (logs / "empty").mkdir(parents=True)
    (logs / "empty" / "never-ran.jsonl").touch()  # no task wrote a line
    status = run("batch-status", logs / "empty", "--inputs", tree)
    assert status.exit_code == 1 and "3 outputs" in status.stdout
    assert f"missing     {tree / 'a.wav'}" in status.stdout
    run("encode", "-q", "--shard", f"{k}/2", "--summary", logs / "one.jsonl", tree,
        tmp_path / "out")
    assert run("batch-status", logs / "one.jsonl").exit_code == 0  # all it knows of is done
    status = run("batch-status", logs, "--inputs", tree)
    assert status.exit_code == 1
    assert f"missing     {new}.apc" in status.stdout
    assert f"the task of shard {3 - k}/2" in status.stdout.splitlines()[-1]


def test_half_a_line_left_by_a_killed_task_is_left_out_and_ended(run, tree, tmp_path) -> None:
    (tree / "bad.wav").unlink()
    summary = tmp_path / "task.jsonl"
    assert run("encode", "-q", "--summary", summary, tree, tmp_path / "out").exit_code == 0
    with open(summary, "a") as f:
        f.write('{"input": "src/a.wav", "output": "out/a.apc", "na')
    status = run("batch-status", summary)
    assert status.exit_code == 0 and "1 damaged lines left out" in status.stdout
    assert run("encode", "-q", "--summary", summary, tree, tmp_path / "out").exit_code == 0
    text = summary.read_text()
    assert text.endswith("\n") and '"na\n{"input"' in text  # the next line starts anew
    assert run("batch-status", summary).exit_code == 0


def test_batch_status_refuses_what_is_not_a_summary(run, tmp_path) -> None:
    (tmp_path / "notes.jsonl").write_text("hello\n")
    (tmp_path / "empty").mkdir()
    for args in ([tmp_path / "notes.jsonl"], [tmp_path / "empty"], [tmp_path / "none.jsonl"],
                 []):
        result = run("batch-status", *args)
        assert result.exit_code == 2, args
        assert "Traceback" not in result.output
