"""Folders with forward passes shared between files (engine/shared.py), forced on the CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from apcodec_cli.cli import batch
from apcodec_cli.engine import runners, shared
from apcodec_cli.engine.runners import LocalRunner

from helpers import partials, write_audio

#: (seconds, rate, channels): one chunk or several, odd lengths, resampled, stereo, tiny.
_FILES = [(0.3, 48000, 1), (1.2, 44100, 2), (2.5, 48000, 1), (2.5, 48000, 1),
          (3.7, 16000, 1), (1.0, 48000, 2), (0.05, 48000, 1), (5.1, 48000, 1)]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for i, (seconds, rate, channels) in enumerate(_FILES):
        path = tmp_path / "in" / ("sub" if i % 3 == 0 else "") / f"f{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_audio(path, seconds, rate, channels)
    return tmp_path / "in"


@pytest.fixture
def run(cli, tiny_weights: Path, monkeypatch, one_thread):
    """`cli` with the tiny weights, sharing passes of up to `rows` rows (0: none)."""
    monkeypatch.setenv("APCODEC_WEIGHTS", str(tiny_weights))

    def invoke(rows: int, *args: object):
        monkeypatch.setenv(shared.ENV_VAR, str(rows))
        return cli(*args)

    return invoke


@pytest.fixture
def passes(monkeypatch) -> list[int]:
    """Rows of every forward pass run."""
    rows: list[int] = []
    real = runners.run_model

    def counted(model, method, batch, bf16=False):
        rows.append(len(batch))
        return real(model, method, batch, bf16)

    monkeypatch.setattr(runners, "run_model", counted)
    return rows


def _row_by_row(monkeypatch) -> None:
    """Compute every pass one row at a time: results then cannot depend on the batching."""
    real = runners.run_model
    monkeypatch.setattr(runners, "run_model", lambda model, method, batch, bf16=False:
                        np.concatenate([real(model, method, batch[i:i + 1], bf16)
                                        for i in range(len(batch))]))


def _tree(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


def test_shared_passes_encode_the_same_bytes_as_file_by_file(run, folder, tmp_path, passes):
    assert run(0, "encode", "-q", folder, tmp_path / "one").exit_code == 0
    per_file = max(passes)
    passes.clear()
    assert run(8, "encode", "-q", folder, tmp_path / "shared").exit_code == 0
    one, together = _tree(tmp_path / "one"), _tree(tmp_path / "shared")
    assert one.keys() == together.keys() and len(one) == len(_FILES)
    for name in one:
        assert one[name].read_bytes() == together[name].read_bytes(), name
    assert max(passes) > per_file  # chunks of several files did share passes
    assert max(passes) <= 8 + per_file


@pytest.mark.parametrize("fmt", ["", "--float"])
def test_shared_passes_decode_the_same_samples(run, folder, tmp_path, monkeypatch, fmt):
    assert run(0, "encode", "-q", folder, tmp_path / "codes").exit_code == 0
    _row_by_row(monkeypatch)  # the same arithmetic both ways: the routing must be exact
    args = ["decode", "-q", *([fmt] if fmt else []), tmp_path / "codes"]
    assert run(0, *args, tmp_path / "one").exit_code == 0
    assert run(8, *args, "--original-rate", tmp_path / "one-rate").exit_code == 0
    assert run(8, *args, tmp_path / "shared").exit_code == 0
    assert run(8, *args, "--original-rate", tmp_path / "shared-rate").exit_code == 0
    for a, b in [("one", "shared"), ("one-rate", "shared-rate")]:
        one, together = _tree(tmp_path / a), _tree(tmp_path / b)
        assert one.keys() == together.keys() and len(one) == len(_FILES)
        for name in one:
            x, rate_x = sf.read(one[name], dtype="float32", always_2d=True)
            y, rate_y = sf.read(together[name], dtype="float32", always_2d=True)
            assert rate_x == rate_y and x.shape == y.shape
            assert np.array_equal(x, y), name


def test_batched_kernels_round_differently_but_only_slightly(run, folder, tmp_path):
    """Without the row-by-row model: other batch sizes, float rounding (docs/speed.md)."""
    assert run(0, "encode", "-q", folder, tmp_path / "codes").exit_code == 0
    assert run(0, "decode", "-q", "--float", tmp_path / "codes", tmp_path / "one").exit_code == 0
    assert run(8, "decode", "-q", "--float", tmp_path / "codes", tmp_path / "sh").exit_code == 0
    one, together = _tree(tmp_path / "one"), _tree(tmp_path / "sh")
    for name in one:
        x, y = sf.read(one[name])[0], sf.read(together[name])[0]
        np.testing.assert_allclose(y, x, rtol=0, atol=1e-5)


def test_a_broken_file_fails_alone(run, folder, tmp_path):
    (folder / "broken.wav").write_bytes(b"RIFF nonsense")
    (folder / "sub" / "empty.wav").write_bytes(b"")
    result = run(8, "encode", folder, tmp_path / "out")
    assert result.exit_code == 1
    assert "8 converted, 0 skipped (already exist; --force to redo), 2 failed" in result.stderr
    assert f"{folder / 'broken.wav'}: cannot read as audio" in result.stderr
    assert len(_tree(tmp_path / "out")) == len(_FILES)
    assert partials(tmp_path / "out") == []


def test_a_failing_pass_fails_its_files_and_nothing_hangs(codec, folder, tmp_path,
                                                          monkeypatch, one_thread):
    def broken(model, method, batch, bf16=False):
        if batch.shape[-1] == round(0.3 * 48000):  # f0 is shorter than one chunk: alone
            raise RuntimeError("CUDA out of memory\nmore detail")
        return real(model, method, batch, bf16)

    real = runners.run_model
    monkeypatch.setattr(runners, "run_model", broken)
    (tmp_path / "out").mkdir()
    jobs = [batch.Job(str(p), str(tmp_path / "out" / p.with_suffix(".apc").name))
            for p in sorted(folder.rglob("*.wav"))]
    done: list = []
    summary = batch.convert_files(
        jobs, lambda job, shared: shared.encode_file(job.source, job.target), codec, force=False,
        rows=8, files=3, on_done=done.append)
    assert [(Path(j.source).name, e) for j, e in summary.failed] == [
        ("f0.wav", "forward pass failed: CUDA out of memory")]
    assert len(summary.done) == len(_FILES) - 1 and len(done) == len(_FILES)
    assert all(outcome.seconds > 0 for outcome in done)  # each file timed in its thread
    assert isinstance(codec.engine.runner, LocalRunner)  # the codec given is left as it was
