"""Stopping: Ctrl-C, SIGTERM and a killed parent leave no partial output and no process
behind (issue 11, items 1 and 2), and `--jobs` pools spawn their workers (issue 12.1).

A SIGTERM to a `--jobs` parent takes the path of a Ctrl-C (`runtime.process_pool` stops
the pool on any exception), so the process tests cover Ctrl-C and SIGKILL only."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apcodec_cli import machine, runtime
from apcodec_cli.cli import batch
from apcodec_cli.format import atomic
from apcodec_cli.codec import Codec
from helpers import partials, write_audio

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except (OSError, ValueError):
            continue
        if entry.isdigit() and int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait(condition, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def blocked_batch(tmp_path: Path, tiny_weights: Path):
    """`encode --jobs 2` of two FIFOs and four files: each worker takes a FIFO, opens its
    partial output and blocks reading it; the files wait in the queue. Yields the
    process (in a session of its own, like a shell's job) once both partials exist."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.wav", "b.wav"):
        os.mkfifo(src / name)
    for name in ("c.wav", "d.wav", "e.wav", "f.wav"):
        write_audio(src / name, 0.1)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "APCODEC_WEIGHTS": str(tiny_weights),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "apcodec_cli", "encode", "-q", "--jobs", "2",
         *sorted(str(p) for p in src.iterdir()), str(tmp_path / "out")],
        env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    workers: list[int] = []
    try:
        started = _wait(lambda: len(partials(tmp_path)) == 2, 120)
        assert started, proc.stderr.read() if proc.poll() is not None else "no partials"
        workers += _children(proc.pid)
        yield proc, tmp_path / "out", workers
    finally:  # whatever the test found, leave no process behind
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for pid in filter(_running, workers):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_ctrl_c_stops_a_jobs_batch_at_once_and_leaves_nothing(blocked_batch) -> None:
    """Ctrl-C reaches the whole process group: no queued file is started, no partial
    output or worker is left, and the exit status is 130."""
    proc, out, workers = blocked_batch
    assert len(workers) >= 2
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(30) == 130
    assert "Traceback" not in proc.stderr.read().decode()
    assert partials(out) == [] and list(out.rglob("*.apc")) == []
    assert _wait(lambda: not any(map(_running, workers)), 10)


@pytest.mark.slow
def test_workers_die_with_their_parent(blocked_batch) -> None:
    """SIGKILL gives the parent no chance to clean up: each worker notices, removes its
    partial output and exits."""
    proc, out, workers = blocked_batch
    proc.kill()
    proc.wait()
    assert _wait(lambda: not any(map(_running, workers)) and not partials(out), 10)


def test_a_later_run_removes_stale_partials_of_its_outputs(run, tmp_path) -> None:
    write_audio(tmp_path / "in.wav", 0.2)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = atomic.partial_path(tmp_path / "x.apc", int(dead))
    live = atomic.partial_path(tmp_path / "x.apc", os.getppid())  # a running process's
    other = atomic.partial_path(tmp_path / "y.apc", int(dead))  # not this run's output
    for path in (stale, live, other):
        path.write_bytes(b"half")
    result = run("encode", "-q", tmp_path / "in.wav", tmp_path / "x.apc")
    assert result.exit_code == 0, result.output
    assert not stale.exists() and live.exists() and other.exists()


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_a_conversion_and_removes_its_partial(run, tmp_path, monkeypatch,
                                                             sig, status) -> None:
    """Ctrl-C, or SIGTERM as `timeout` and `kill` send it, while an output is half written:
    the exit status says which, and neither the output nor its temporary file is left."""
    write_audio(tmp_path / "in.wav", 0.2)

    def stopped(self, source, target, **kwargs):
        target.write(b"half an output")
        os.kill(os.getpid(), sig)
        time.sleep(5)  # the signal's handler raises before this ends
        raise AssertionError("not stopped")

    monkeypatch.setattr(Codec, "encode_file", stopped)
    result = run("encode", "-q", tmp_path / "in.wav", tmp_path / "x.apc")
    assert result.exit_code == status, result.output
    assert "no partial output is left" in result.stderr
    assert not (tmp_path / "x.apc").exists() and partials(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back afterwards


class _RecordingPool(concurrent.futures.Executor):
    """Runs calls inline and records the multiprocessing context it was given."""

    contexts: list = []

    def __init__(self, workers, mp_context=None, initializer=None, initargs=()) -> None:
        self.contexts.append(mp_context)

    def submit(self, fn, /, *args, **kwargs):
        future = concurrent.futures.Future()
        future.set_result(fn(*args, **kwargs))
        return future


def _ok(context: None, job: batch.Job) -> None:
    pass


def test_pools_spawn_their_workers_never_fork(monkeypatch, codec, tmp_path) -> None:
    """Issue 12.1: the parent may hold CUDA when the pool starts, and a forked child cannot
    use CUDA. Both `--jobs` pools (encode/decode and eval) must use a spawn context."""
    from apcodec_cli.evaluate import run as evaluate_run

    _RecordingPool.contexts = []
    monkeypatch.setattr(runtime.concurrent.futures, "ProcessPoolExecutor", _RecordingPool)
    jobs = [batch.Job(f"{i}.wav", str(tmp_path / f"{i}.apc")) for i in range(3)]
    summary = batch.run_jobs(jobs, _ok, None, force=True, n_jobs=2)
    assert len(summary.done) == 3
    monkeypatch.setattr(evaluate_run, "evaluate_clip", lambda codec, clip, settings: [])
    clips = [evaluate_run.Clip(name=f"c{i}", path=f"{i}.wav", category="speech")
             for i in range(2)]
    assert evaluate_run.evaluate_all(clips, None, codec, jobs=2) == []
    assert len(_RecordingPool.contexts) == 2
    assert all(c.get_start_method() == "spawn" for c in _RecordingPool.contexts)


@pytest.mark.slow
def test_jobs_convert_a_folder_in_spawned_workers(run, tmp_path) -> None:
    (tmp_path / "src").mkdir()
    for name in ("a.wav", "b.wav", "c.wav"):
        write_audio(tmp_path / "src" / name, 0.2)
    result = run("encode", "-q", "--jobs", "2", tmp_path / "src", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.apc", "b.apc", "c.apc"]


def test_jobs_are_capped_by_cores_and_memory(monkeypatch) -> None:
    monkeypatch.setattr(machine, "usable_cores", lambda: 2)
    monkeypatch.setattr(machine, "available_memory", lambda: 3 * runtime.WORKER_MEMORY)
    assert runtime.usable_workers(2) == (2, None)
    workers, why = runtime.usable_workers(100)
    assert workers == 2 and why.startswith("--jobs 100: running 2 workers (2 CPU cores")
    monkeypatch.setattr(machine, "available_memory", lambda: runtime.WORKER_MEMORY // 2)
    assert runtime.usable_workers(100)[0] == 1


def test_jobs_100_says_how_many_it_runs(run, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(machine, "available_memory", lambda: runtime.WORKER_MEMORY)
    monkeypatch.setattr(machine, "usable_cores", lambda: 2)
    (tmp_path / "src").mkdir()
    for name in ("a", "b"):
        write_audio(tmp_path / "src" / f"{name}.wav", 0.2)
    result = run("encode", "--jobs", "100", tmp_path / "src", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "--jobs 2: running 1 worker (2 CPU cores" in result.stderr
    assert len(list((tmp_path / "out").glob("*.apc"))) == 2


def test_a_summary_counts_in_words_and_an_empty_folder_says_so(run, tmp_path) -> None:
    (tmp_path / "src").mkdir()
    empty = run("encode", tmp_path / "src", tmp_path / "out")
    assert empty.exit_code == 0
    assert f"no audio files found in {tmp_path / 'src'}: nothing to convert" in empty.stderr
    write_audio(tmp_path / "src" / "a.wav", 0.2)
    one = run("encode", tmp_path / "src", tmp_path / "out")
    assert "apcodec: 1 file, 0.2 s of audio" in one.stderr
