"""What the CLI says and streams: one-line errors, refused inputs and options, progress
and summaries, stdout and stdin (issue 11, items 6, 7, 9 and 13)."""

from __future__ import annotations

import errno
import io

import numpy as np
import pytest
import soundfile as sf
import torch

from apcodec_cli import runtime
from apcodec_cli.format import atomic
from apcodec_cli.engine import chunked
from apcodec_cli.format.audio import AudioError
from apcodec_cli.codec import Codec
from helpers import partials, tone, write_audio


class _SmallDisk:
    """A file whose disk fills up after `room` bytes."""

    def __init__(self, path, mode: str, room: int) -> None:
        self._file, self._room = open(path, mode), room

    def write(self, data: bytes) -> int:
        if len(data) > self._room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room -= len(data)
        return self._file.write(data)

    def __getattr__(self, name: str):
        return getattr(self._file, name)


@pytest.mark.parametrize("command, room", [("decode", 5000), ("encode", 100)])
def test_a_full_disk_is_one_line_naming_the_output(run, tmp_path, monkeypatch, capfd,
                                                    command, room) -> None:
    write_audio(tmp_path / "in.wav", 1.0)
    assert run("encode", "-q", tmp_path / "in.wav", tmp_path / "x.apc").exit_code == 0
    monkeypatch.setattr(atomic, "open", lambda path, mode: _SmallDisk(path, mode, room),
                        raising=False)
    source, target = ("x.apc", "out.wav") if command == "decode" else ("in.wav", "y.apc")
    result = run(command, "-q", tmp_path / source, tmp_path / target)
    captured = capfd.readouterr()
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"apcodec: error: {tmp_path / source}: No space left on device: {tmp_path / target}"]
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / target).exists() and partials(tmp_path) == []


def test_nan_or_infinite_input_is_refused_with_its_time(run, tmp_path, codec) -> None:
    audio = tone(2.0)
    audio[0, 60_000] = np.nan  # 1.25 s
    sf.write(tmp_path / "nan.wav", audio.T, 48000, subtype="FLOAT")
    result = run("encode", "-q", tmp_path / "nan.wav", tmp_path / "x.apc")
    assert result.exit_code == 1 and "NaN or infinite sample at 1.250 s" in result.stderr
    assert not (tmp_path / "x.apc").exists()
    audio[0, 60_000], audio[0, 30_000] = 0.0, np.inf
    with pytest.raises(AudioError, match="at 0.625 s"):
        codec.encode(audio)


def test_nan_in_a_streamed_wav_is_refused(cli, tiny_stream_weights, tmp_path) -> None:
    audio = tone(0.5)
    audio[0, 12_000] = np.inf
    sf.write(tmp_path / "inf.wav", audio.T, 48000, subtype="FLOAT")
    result = cli("encode", "-s", "-q", "-w", tiny_stream_weights, "-", "-",
                 input=(tmp_path / "inf.wav").read_bytes())
    assert result.exit_code == 1 and "infinite sample at 0.250 s" in result.stderr


@pytest.mark.parametrize("option", [("--start", "nan"), ("--start", "inf"),
                                    ("--duration", "nan"), ("--start", "-1")])
def test_times_that_are_not_finite_are_usage_errors(run, tmp_path, option) -> None:
    write_audio(tmp_path / "in.wav", 1.0)
    run("encode", "-q", tmp_path / "in.wav", tmp_path / "x.apc")
    result = run("decode", "-q", *option, tmp_path / "x.apc", tmp_path / "out.wav")
    assert result.exit_code == 2 and "finite number of seconds" in result.stderr
    assert "Traceback" not in result.output


def test_a_start_past_the_end_is_a_usage_error(run, tmp_path) -> None:
    write_audio(tmp_path / "in.wav", 1.0)
    run("encode", "-q", tmp_path / "in.wav", tmp_path / "x.apc")
    result = run("decode", "-q", "--start", "5", tmp_path / "x.apc", tmp_path / "out.wav")
    assert result.exit_code == 2 and "past the end" in result.stderr
    assert "1.000 s" in result.stderr and not (tmp_path / "out.wav").exists()
    piped = run("decode", "-q", "--start", "5", "-", "-",
                input=(tmp_path / "x.apc").read_bytes())
    assert piped.exit_code == 1 and "past the end" in piped.stderr and not piped.stdout_bytes


def test_progress_bars_only_on_a_terminal_and_a_batch_summary(run, tmp_path) -> None:
    (tmp_path / "src").mkdir()
    for name in ("a.wav", "b.wav"):
        write_audio(tmp_path / "src" / name, 1.0)
    one = run("encode", tmp_path / "src" / "a.wav", tmp_path / "a.apc")
    assert one.exit_code == 0 and "%|" not in one.stderr and " s [" not in one.stderr
    batch = run("encode", tmp_path / "src", tmp_path / "out")
    assert batch.exit_code == 0 and "%|" not in batch.stderr
    summary = batch.stderr.splitlines()[-1]
    assert summary.startswith("apcodec: 2 files, 2.0 s of audio: 192.1 kB in, ")
    assert "kbit/s coded" in summary and "x real time)" in summary
    quiet = run("encode", "-q", "-f", tmp_path / "src", tmp_path / "out")
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_info_reads_stdin(run, tmp_path) -> None:
    write_audio(tmp_path / "in.wav", 1.2)
    run("encode", "-q", tmp_path / "in.wav", tmp_path / "x.apc")
    result = run("info", "-", input=(tmp_path / "x.apc").read_bytes())
    assert result.exit_code == 0 and "all intact" in result.output
    assert f"{(tmp_path / 'x.apc').stat().st_size} bytes" in result.output


def test_decoding_to_stdout_streams_as_it_decodes(run, tmp_path, monkeypatch) -> None:
    """The first bytes reach stdout before the last chunk is decoded, and they are the
    WAV that a file would hold, with its exact sizes in the header."""
    write_audio(tmp_path / "in.wav", 3.5)
    run("encode", "-q", tmp_path / "in.wav", tmp_path / "x.apc")
    seen = []
    original = chunked.ChunkedEngine.decode_chunks

    def watched(*args, **kwargs):
        import sys
        for block in original(*args, **kwargs):
            seen.append(sys.stdout.buffer.tell())
            yield block

    monkeypatch.setattr(chunked.ChunkedEngine, "decode_chunks", watched)
    result = run("decode", "-q", tmp_path / "x.apc", "-")
    assert result.exit_code == 0, result.output
    assert len(seen) == 4 and seen[-1] > 44 + 2 * 48000
    streamed, rate = sf.read(io.BytesIO(result.stdout_bytes), dtype="int16")
    run("decode", "-q", tmp_path / "x.apc", tmp_path / "out.wav")
    whole, _ = sf.read(tmp_path / "out.wav", dtype="int16")
    assert rate == 48000 and np.array_equal(streamed, whole)


def test_cuda_devices_by_number(run, tmp_path, monkeypatch) -> None:
    write_audio(tmp_path / "in.wav", 0.1)
    if not torch.cuda.is_available():
        result = run("encode", "--device", "cuda:0", tmp_path / "in.wav", tmp_path / "x.apc")
        assert result.exit_code == 2 and "no CUDA device is available" in result.stderr
    result = run("encode", "--device", "gpu1", tmp_path / "in.wav", tmp_path / "x.apc")
    assert result.exit_code == 2 and "cuda:N" in result.stderr
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert runtime.resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(runtime.DeviceError, match="no such CUDA device .* cuda:0 to cuda:1"):
        runtime.resolve_device("cuda:2")
    result = run("encode", "--device", "cuda:7", tmp_path / "in.wav", tmp_path / "x.apc")
    assert result.exit_code == 2 and "--device cuda:7: no such CUDA device" in result.stderr


def test_codec_api_refuses_a_start_past_the_end(codec: Codec, tmp_path) -> None:
    write_audio(tmp_path / "in.wav", 0.5)
    codec.encode_file(str(tmp_path / "in.wav"), str(tmp_path / "x.apc"))
    with pytest.raises(ValueError, match="past the end"):
        codec.decode_file(str(tmp_path / "x.apc"), io.BytesIO(), start=0.5)
    with pytest.raises(ValueError, match="finite"):
        codec.decode_file(str(tmp_path / "x.apc"), io.BytesIO(), start=float("nan"))


def test_encode_to_stdout_streams_and_a_failed_write_fails(run, tmp_path, monkeypatch) -> None:
    """Codes leave as they are made (they were held to the end): a chunk once the next one
    is decoded too, for its level gains (and the batches in flight: some 8 chunks behind
    the encoder on two threads), so the file grows while the encoder still runs;
    and a write that fails (`ulimit -f`: File too large) exits 1 (it exited 0 with a third
    of the file)."""
    import resource
    import subprocess
    import sys

    from apcodec_cli.engine.chunked import ChunkedEngine

    write_audio(tmp_path / "in.wav", 20.0)
    sizes = []
    encode = ChunkedEngine.encode

    def watched(self, *args):
        for codes in encode(self, *args):
            sizes.append(len(sys.stdout.buffer.getvalue()))
            yield codes

    monkeypatch.setattr(ChunkedEngine, "encode", watched)
    whole = run("encode", "-q", tmp_path / "in.wav", "-")
    assert whole.exit_code == 0 and len(sizes) == 20, sizes
    assert 0 < sizes[0] < sizes[10] < sizes[-1] < len(whole.stdout_bytes), sizes
    with open(tmp_path / "out.apc", "wb") as out:
        limited = subprocess.run(
            [sys.executable, "-m", "apcodec_cli", "encode", "-q", tmp_path / "in.wav", "-"],
            stdout=out, stderr=subprocess.PIPE, text=True, timeout=120,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000)))
    assert limited.returncode == 1
    assert limited.stderr.endswith("File too large: stdout\n")


def _apcodec(*args, **kwargs):
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "apcodec_cli", *map(str, args)],
                            stderr=subprocess.PIPE, **kwargs)


def test_a_reader_that_goes_away_ends_decode_quietly_as_cat(run, tmp_path) -> None:
    import subprocess

    write_audio(tmp_path / "in.wav", 3.0)
    assert run("encode", "-q", tmp_path / "in.wav", tmp_path / "x.apc").exit_code == 0
    proc = _apcodec("decode", "-q", tmp_path / "x.apc", "-", stdout=subprocess.PIPE)
    assert proc.stdout.read(10)[:4] == b"RIFF"
    proc.stdout.close()  # `| head -c 10`
    assert proc.wait(timeout=120) == 141 and proc.stderr.read() == b""


def test_info_to_a_full_disk_is_a_failure_not_an_internal_error(run, tmp_path) -> None:
    write_audio(tmp_path / "in.wav", 0.5)
    assert run("encode", "-q", tmp_path / "in.wav", tmp_path / "x.apc").exit_code == 0
    with open("/dev/full", "wb") as full:
        proc = _apcodec("info", tmp_path / "x.apc", stdout=full)
        assert proc.wait(timeout=120) == 1
    assert proc.stderr.read() == b"apcodec: error: No space left on device: stdout\n"
