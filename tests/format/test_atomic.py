"""Atomic outputs (format/atomic.py): renamed into place on success, removed on any failure, and
registered for `remove_partials` in the same hold of the lock that creates them."""

from __future__ import annotations

import builtins
from pathlib import Path

import pytest

from apcodec_cli.format import atomic


def _left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_registers_and_creates_its_file_under_one_lock_hold(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    tmp = atomic.partial_path(tmp_path / "out.bin")

    class RecordingLock:
        def __enter__(self) -> None:
            events.append("lock")

        def __exit__(self, *exc: object) -> None:
            events.append("unlock")

    def recording_open(path, mode):
        events.append(f"open, registered: {Path(path) in atomic._PARTIALS}")
        return builtins.open(path, mode)

    monkeypatch.setattr(atomic, "_LOCK", RecordingLock())
    monkeypatch.setattr(atomic, "open", recording_open, raising=False)
    with atomic.atomic_write(tmp_path / "out.bin") as f:
        assert tmp.exists() and tmp in atomic._PARTIALS
        f.write(b"data")
    assert events == ["lock", "open, registered: True", "unlock", "lock", "unlock"]
    assert (tmp_path / "out.bin").read_bytes() == b"data" and tmp not in atomic._PARTIALS


@pytest.mark.parametrize("writer", [atomic.atomic_write, atomic.atomic_path])
def test_a_failing_block_leaves_the_target_as_it_was(tmp_path: Path, writer) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with writer(target) as out:
            if isinstance(out, Path):
                out.write_bytes(b"new")
            else:
                out.write(b"new")
            raise KeyboardInterrupt
    assert _left(tmp_path) == ["out.bin"] and target.read_bytes() == b"old"
    assert not atomic._PARTIALS


def test_a_file_that_cannot_be_created_is_named_and_not_left_registered(tmp_path) -> None:
    with pytest.raises(OSError, match="missing/out.bin"):
        with atomic.atomic_write(tmp_path / "missing" / "out.bin"):
            pass
    assert not atomic._PARTIALS


def test_remove_partials_removes_what_is_being_written(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with atomic.atomic_write(tmp_path / "a.bin"), atomic.atomic_path(tmp_path / "b.bin") as b:
            b.write_bytes(b"b")
            atomic.remove_partials()
            assert _left(tmp_path) == []
            raise RuntimeError("stopped")  # a stopping process exits here
    assert _left(tmp_path) == [] and not atomic._PARTIALS


def test_atomic_text_leaves_the_old_file_when_the_disk_fills(tmp_path, monkeypatch) -> None:
    from helpers import disk_fills_while_writing

    (tmp_path / "index.json").write_text("old")
    disk_fills_while_writing(monkeypatch, "index.json")
    with pytest.raises(OSError):
        atomic.atomic_text(tmp_path / "index.json", "new and longer")
    assert _left(tmp_path) == ["index.json"] and (tmp_path / "index.json").read_text() == "old"


def test_a_stopped_worker_removes_its_scratch_folders(tmp_path) -> None:
    """`tempfile.TemporaryDirectory` stays behind when a `--jobs` worker is told to stop
    (it exits at once); `scratch_dir` folders go with its partial files."""
    import subprocess
    import sys

    script = ("import os, signal\n"
              "from apcodec_cli import runtime\n"
              "from apcodec_cli.format.atomic import scratch_dir\n"
              "signal.signal(signal.SIGTERM, runtime._exit_now)  # as in a worker\n"
              "with scratch_dir('apcodec-eval-') as d:\n"
              "    (d / 'clip.apc').write_bytes(b'x')\n"
              "    print(d, flush=True)\n"
              "    os.kill(os.getpid(), signal.SIGTERM)\n"
              "    signal.pause()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 128 + 15
    assert not Path(done.stdout.strip()).exists()


def test_an_evaluated_clip_codes_in_a_scratch_folder(monkeypatch) -> None:
    from apcodec_cli.evaluate import run

    seen = []
    monkeypatch.setattr(run, "load_clip", lambda path, seconds: [])

    def systems(codec, wav, settings, tmp):
        seen.append(tmp in atomic._SCRATCH)
        return iter(())

    monkeypatch.setattr(run, "_systems", systems)
    settings = type("Settings", (), {"seconds": 1.0, "report": None})()
    assert run.evaluate_clip(None, run.Clip("a", "a.wav", "music"), settings) == []
    assert seen == [True]


def test_a_process_that_writes_removes_its_temporaries_when_it_must_exit_at_once(
        tmp_path) -> None:
    """`runtime._exit_now` (a stopped worker) runs `remove_partials`: registered by the
    first temporary file a process makes, since the base layer cannot know files."""
    from apcodec_cli import runtime

    with atomic.atomic_write(tmp_path / "out.bin") as f:
        f.write(b"x")
        assert atomic.remove_partials in runtime._CLEANUPS
        assert runtime._CLEANUPS.count(atomic.remove_partials) == 1
