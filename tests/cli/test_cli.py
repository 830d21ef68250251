"""The command line through click's CliRunner: files, folders, pipes, failures, exit codes."""

from __future__ import annotations

import io
import os

import soundfile as sf

from helpers import chunk_offset, flip, partials, write_audio


def test_help_teaches_with_examples(run) -> None:
    result = run("--help")
    assert result.exit_code == 0 and "Examples:" in result.output
    assert "--shard" in run("encode", "--help").output


def test_encode_decode_one_file(run, tmp_path) -> None:
    write_audio(tmp_path / "in.wav", 1.5, rate=44100, channels=2)
    assert run("encode", "-q", tmp_path / "in.wav", tmp_path / "x.apc").exit_code == 0
    result = run("decode", "-q", tmp_path / "x.apc", tmp_path / "out.wav")
    assert result.exit_code == 0 and result.output == ""
    info = sf.info(tmp_path / "out.wav")
    assert (info.samplerate, info.channels, info.frames) == (48000, 2, 72000)


def test_untrained_weights_are_announced(run, tmp_path) -> None:
    write_audio(tmp_path / "in.wav", 0.2)
    result = run("encode", tmp_path / "in.wav", tmp_path / "x.apc")
    assert "UNTRAINED" in result.stderr


def test_missing_weights_is_one_clear_line(run, tmp_path, monkeypatch) -> None:
    write_audio(tmp_path / "in.wav", 0.2)
    monkeypatch.setenv("APCODEC_WEIGHTS", str(tmp_path / "nothing.pt"))
    result = run("encode", tmp_path / "in.wav", tmp_path / "x.apc")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"apcodec: error: weights file not found: {tmp_path / 'nothing.pt'}"]


def test_refuses_to_overwrite_without_force(run, tmp_path) -> None:
    write_audio(tmp_path / "in.wav", 0.3)
    (tmp_path / "x.apc").write_bytes(b"keep me")
    result = run("encode", "-q", tmp_path / "in.wav", tmp_path / "x.apc")
    assert result.exit_code == 1 and "--force" in result.stderr
    assert (tmp_path / "x.apc").read_bytes() == b"keep me"
    assert run("encode", "-q", "--force", tmp_path / "in.wav", tmp_path / "x.apc").exit_code == 0
    assert (tmp_path / "x.apc").read_bytes()[:4] == b"\x89APC"


def test_stdin_to_stdout_pipeline(run, tmp_path) -> None:
    write_audio(tmp_path / "in.wav", 0.7)
    encoded = run("encode", "-q", "-", "-", input=(tmp_path / "in.wav").read_bytes())
    assert encoded.exit_code == 0 and encoded.stdout_bytes[:4] == b"\x89APC"
    decoded = run("decode", "-q", "-", "-", input=encoded.stdout_bytes)
    assert decoded.exit_code == 0
    assert sf.info(io.BytesIO(decoded.stdout_bytes)).frames == round(0.7 * 48000)


def test_folder_is_mirrored_and_a_broken_file_does_not_stop_the_batch(run, tmp_path) -> None:
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    write_audio(src / "one.wav", 0.4)
    write_audio(src / "a" / "two.flac", 0.3, rate=16000)
    write_audio(src / "a" / "b" / "three.ogg", 0.2, rate=44100, subtype="VORBIS")
    (src / "a" / "broken.wav").write_bytes(b"RIFF....garbage")
    (src / "notes.txt").write_text("not audio")
    result = run("encode", "-q", src, tmp_path / "out")
    assert result.exit_code == 1
    assert "broken.wav" in result.stderr and "cannot read" in result.stderr
    made = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.apc"))
    assert made == ["a/b/three.apc", "a/two.apc", "one.apc"]
    assert partials(tmp_path) == []
    # Decoding the folder back mirrors it again; a second run skips what exists.
    assert run("decode", "-q", tmp_path / "out", tmp_path / "wav").exit_code == 0
    assert sf.info(tmp_path / "wav" / "a" / "two.wav").frames == round(0.3 * 48000)
    again = run("decode", tmp_path / "out", tmp_path / "wav")
    assert again.exit_code == 0 and "0 converted, 3 skipped" in again.stderr


def test_several_inputs_go_into_a_folder(run, tmp_path) -> None:
    for name in ("a.wav", "b.wav"):
        write_audio(tmp_path / name, 0.2)
    assert run("encode", "-q", tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "codes").exit_code == 0
    assert sorted(os.listdir(tmp_path / "codes")) == ["a.apc", "b.apc"]


def test_shards_partition_a_tree(run, tmp_path) -> None:
    (tmp_path / "src").mkdir()
    for i in range(8):
        write_audio(tmp_path / "src" / f"{i}.wav", 0.1)
    seen = []
    for k in (1, 2, 3):
        assert run("encode", "-q", "--shard", f"{k}/3", tmp_path / "src", tmp_path / f"s{k}").exit_code == 0
        seen += os.listdir(tmp_path / f"s{k}") if (tmp_path / f"s{k}").exists() else []
    assert sorted(seen) == sorted(f"{i}.apc" for i in range(8))
    assert run("encode", "--shard", "4/3", tmp_path / "src", tmp_path / "x").exit_code == 2


def test_failed_decode_leaves_no_output(run, tmp_path) -> None:
    write_audio(tmp_path / "in.wav", 2.5)
    run("encode", "-q", tmp_path / "in.wav", tmp_path / "x.apc")
    data = (tmp_path / "x.apc").read_bytes()
    (tmp_path / "bad.apc").write_bytes(flip(data, chunk_offset(data, 2) + 10))
    result = run("decode", "-q", tmp_path / "bad.apc", tmp_path / "out.wav")
    assert result.exit_code == 1
    assert "chunk 2 (2.00–2.50 s)" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "out.wav").exists() and partials(tmp_path) == []
    (tmp_path / "cut.apc").write_bytes(data[:-400])
    result = run("decode", "-q", tmp_path / "cut.apc", tmp_path / "out.wav")
    assert result.exit_code == 1 and "truncated" in result.stderr.lower()
    assert not (tmp_path / "out.wav").exists()


def test_info_reports_integrity(run, tmp_path) -> None:
    write_audio(tmp_path / "in.wav", 2.5)
    run("encode", "-q", tmp_path / "in.wav", tmp_path / "x.apc")
    result = run("info", tmp_path / "x.apc")
    assert result.exit_code == 0 and "all intact" in result.output and "kbit/s" in result.output
    (tmp_path / "bad.apc").write_bytes(flip((tmp_path / "x.apc").read_bytes(), 100, 0x01))
    result = run("info", "--json", tmp_path / "bad.apc")
    assert result.exit_code == 1 and '"ok": false' in result.output and "chunk 0" in result.output


def test_range_options(run, tmp_path) -> None:
    write_audio(tmp_path / "in.wav", 3.0)
    run("encode", "-q", tmp_path / "in.wav", tmp_path / "x.apc")
    assert run("decode", "-q", "--start", "1", "--duration", "0.5", "--float",
               tmp_path / "x.apc", tmp_path / "part.wav").exit_code == 0
    info = sf.info(tmp_path / "part.wav")
    assert info.frames == 24000 and info.subtype == "FLOAT"


def test_flac_output_by_extension(run, tmp_path) -> None:
    write_audio(tmp_path / "in.wav", 0.5)
    run("encode", "-q", tmp_path / "in.wav", tmp_path / "x.apc")
    assert run("decode", "-q", tmp_path / "x.apc", tmp_path / "out.flac").exit_code == 0
    assert sf.info(tmp_path / "out.flac").format == "FLAC"
    result = run("decode", "-q", "--float", tmp_path / "x.apc", tmp_path / "f.flac")
    assert result.exit_code == 2 and ".flac files cannot hold float" in result.stderr


def test_a_bad_wav_stream_on_stdin_is_one_line(run, tiny_stream_weights, monkeypatch) -> None:
    monkeypatch.setenv("APCODEC_STREAM_WEIGHTS", str(tiny_stream_weights))
    result = run("encode", "-q", "-s", "-", "-", input=b"this is not a WAV stream")
    assert result.exit_code == 1 and result.stdout_bytes == b""
    assert result.stderr == ("apcodec: error: -: standard input is not a WAV stream "
                             "(RIFF/WAVE header expected)\n")


def test_a_file_batch_setting_that_is_not_a_number_is_a_usage_error(run, tmp_path,
                                                                    monkeypatch) -> None:
    (tmp_path / "src").mkdir()
    write_audio(tmp_path / "src" / "a.wav", 0.2)
    monkeypatch.setenv("APCODEC_FILE_BATCH", "abc")
    result = run("encode", tmp_path / "src", tmp_path / "out")
    assert result.exit_code == 2 and "internal error" not in result.stderr
    assert "$APCODEC_FILE_BATCH must be a whole number" in result.stderr


def test_a_live_pipe_runs_on_one_torch_thread(run, tiny_stream_weights, tmp_path,
                                              monkeypatch) -> None:
    """Two processes of a pipe each ran one thread per core (50-72 s for 3 s of audio on a
    busy machine); unless $OMP_NUM_THREADS says otherwise, a pipe takes one."""
    import torch

    monkeypatch.setenv("APCODEC_STREAM_WEIGHTS", str(tiny_stream_weights))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    write_audio(tmp_path / "in.wav", 0.5)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = run("encode", "-q", "-s", "-", "-", input=(tmp_path / "in.wav").read_bytes())
        assert result.exit_code == 0 and torch.get_num_threads() == 1
        torch.set_num_threads(2)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert run("encode", "-q", "-s", "-", "-", input=(tmp_path / "in.wav").read_bytes()
                   ).exit_code == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_info_takes_folders_as_encode_and_decode_do(run, tmp_path) -> None:
    (tmp_path / "codes" / "sub").mkdir(parents=True)
    write_audio(tmp_path / "in.wav", 0.3)
    for name in ("a.apc", "sub/b.apc"):
        assert run("encode", "-q", tmp_path / "in.wav", tmp_path / "codes" / name).exit_code == 0
    (tmp_path / "codes" / "notes.txt").write_text("not a code file")
    result = run("info", tmp_path / "codes")
    assert result.exit_code == 0, result.output
    assert [line for line in result.stdout.splitlines() if not line.startswith(" ")] == [
        str(tmp_path / "codes" / "a.apc"), str(tmp_path / "codes" / "sub" / "b.apc")]
    (tmp_path / "empty").mkdir()
    assert run("info", tmp_path / "empty").exit_code == 2


def test_packet_without_a_live_pipe_is_a_usage_error(run, tmp_path) -> None:
    write_audio(tmp_path / "in.wav", 0.3)
    for args in ([], ["-s"]):
        result = run("encode", *args, "--packet", "5", tmp_path / "in.wav", tmp_path / "x.apc")
        assert result.exit_code == 2 and "--packet sets the records of a real-time pipe" \
            in result.stderr
    assert not (tmp_path / "x.apc").exists()
