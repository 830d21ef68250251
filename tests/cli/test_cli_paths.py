"""Which inputs the CLI reads and which outputs it writes (issue 11, items 3, 4, 5, 8, 13)."""

from __future__ import annotations

import os
import zlib

import pytest
import soundfile as sf

from apcodec_cli.format.audio import writable_extensions
from helpers import write_audio


def _old_shard(name: str, n: int) -> int:
    """The shard (1-based) that a file named `name` fell in before: by its source name."""
    return zlib.crc32(name.encode()) % n + 1


def test_shards_find_collisions_as_an_unsharded_run_does(run, tmp_path) -> None:
    """`a.wav` and `a.flac` both map to `a.apc`: one shard must say so and fail."""
    stem = next(s for s in (f"s{i}" for i in range(100))
                if _old_shard(f"{s}.wav", 2) != _old_shard(f"{s}.flac", 2))
    src = tmp_path / "src"
    src.mkdir()
    write_audio(src / f"{stem}.wav", 0.1)
    write_audio(src / f"{stem}.flac", 0.1)
    whole = run("encode", "-q", src, tmp_path / "all")
    assert whole.exit_code == 1 and "would also be written from" in whole.stderr
    results = [run("encode", "-q", "--shard", f"{k}/2", src, tmp_path / "sharded")
               for k in (1, 2)]
    assert sorted(r.exit_code for r in results) == [0, 1]
    assert sum("would also be written from" in r.stderr for r in results) == 1
    # Existing outputs do not hide a collision either.
    (tmp_path / "all").mkdir(exist_ok=True)
    (tmp_path / "all" / f"{stem}.apc").write_bytes(b"old")
    assert run("encode", "-q", src, tmp_path / "all").exit_code == 1


def test_an_output_that_is_the_input_is_refused_even_with_force(run, tmp_path) -> None:
    write_audio(tmp_path / "x.wav", 0.2)
    before = (tmp_path / "x.wav").read_bytes()
    result = run("encode", "-f", tmp_path / "x.wav", tmp_path / "x.wav")
    assert result.exit_code == 2 and "is the input itself" in result.stderr
    assert run("encode", "-q", tmp_path / "x.wav", tmp_path / "x.apc").exit_code == 0
    os.link(tmp_path / "x.apc", tmp_path / "same.apc")  # another name, the same file
    result = run("decode", "-f", tmp_path / "x.apc", tmp_path / "same.apc")
    assert result.exit_code == 2 and "is the input itself" in result.stderr
    # In a batch, a file whose output is itself fails; the others go on.
    (tmp_path / "d").mkdir()
    codes = (tmp_path / "x.apc").read_bytes()
    (tmp_path / "d" / "codes.wav").write_bytes(codes)  # a bitstream under an audio name
    (tmp_path / "d" / "y.apc").write_bytes(codes)
    result = run("decode", "-q", "-f", tmp_path / "d" / "codes.wav", tmp_path / "d" / "y.apc",
                 tmp_path / "d")
    assert result.exit_code == 1 and "is the input itself" in result.stderr
    assert (tmp_path / "d" / "codes.wav").read_bytes() == codes
    assert sf.info(tmp_path / "d" / "y.wav").frames == 0.2 * 48000
    assert (tmp_path / "x.wav").read_bytes() == before


def test_a_trailing_slash_names_a_folder(run, tmp_path) -> None:
    write_audio(tmp_path / "in.wav", 0.2)
    assert run("encode", "-q", tmp_path / "in.wav", f"{tmp_path / 'newdir'}/").exit_code == 0
    assert (tmp_path / "newdir").is_dir() and (tmp_path / "newdir" / "in.apc").is_file()


@pytest.mark.parametrize("ext, fmt", [(".mp3", "MP3"), (".ogg", "OGG"), (".opus", "OGG"),
                                      (".flac", "FLAC"), (".aiff", "AIFF")])
def test_decoding_writes_the_format_the_name_says(run, tmp_path, ext, fmt) -> None:
    if ext not in writable_extensions():
        pytest.skip(f"this libsndfile does not write {ext}")
    write_audio(tmp_path / "in.wav", 0.5)
    run("encode", "-q", tmp_path / "in.wav", tmp_path / "x.apc")
    result = run("decode", "-q", tmp_path / "x.apc", tmp_path / f"out{ext}")
    assert result.exit_code == 0, result.output
    info = sf.info(tmp_path / f"out{ext}")
    assert info.format == fmt and info.samplerate == 48000


def test_mismatched_extensions_are_refused(run, tmp_path) -> None:
    write_audio(tmp_path / "in.wav", 0.3)
    result = run("encode", "-q", tmp_path / "in.wav", tmp_path / "out.wav")
    assert result.exit_code == 2 and "name the output *.apc" in result.stderr
    assert not (tmp_path / "out.wav").exists()
    run("encode", "-q", tmp_path / "in.wav", tmp_path / "x.apc")
    for name in ("out.m4a", "out.apc", "out"):
        result = run("decode", "-q", tmp_path / "x.apc", tmp_path / name)
        assert result.exit_code == 2 and "cannot write audio" in result.stderr, name
        assert not (tmp_path / name).exists()


def test_a_missing_output_is_named(run, tmp_path) -> None:
    write_audio(tmp_path / "in.wav", 0.1)
    result = run("encode", tmp_path / "in.wav")
    assert result.exit_code == 2 and "missing OUTPUT" in result.stderr
    assert "INPUT" not in result.stderr.replace("INPUT... OUTPUT", "")
    assert "missing INPUT and OUTPUT" in run("decode").stderr


def test_a_folder_scan_says_what_it_skipped(run, tmp_path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    write_audio(src / "one.wav", 0.1)
    write_audio(tmp_path / "elsewhere.wav", 0.1)
    (tmp_path / "linked").mkdir()
    write_audio(tmp_path / "linked" / "two.wav", 0.1)
    os.symlink(tmp_path / "gone.wav", src / "dead.wav")
    os.symlink(tmp_path / "linked", src / "sub" / "link")
    os.symlink(tmp_path / "elsewhere.wav", src / "alias.wav")  # a file link is followed
    for name in ("song.m4a", "talk.aac", "notes.txt"):
        (src / name).write_bytes(b"not for us")
    (src / ".hidden.wav").write_bytes(b"")
    result = run("encode", src, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").rglob("*.apc")) == ["alias.apc", "one.apc"]
    err = result.stderr
    assert f"dangling symlinks: {src / 'dead.wav'}" in err
    assert f"symlinked folders (not followed): {src / 'sub' / 'link'}" in err
    assert ".aac (1), .m4a (1), .txt (1)" in err and ".hidden" not in err
    quiet = run("encode", "-q", "-f", src, tmp_path / "out")
    assert quiet.exit_code == 0 and quiet.stderr == ""
