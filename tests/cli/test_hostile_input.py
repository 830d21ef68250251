"""Hostile and damaged input: limits come from the model and the machine, never from what
a header claims; `info` and decode run the same checks; damage fails fast or is skipped."""

from __future__ import annotations

import dataclasses
import os
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from apcodec_cli.codec import Codec
from apcodec_cli.format.audio import AudioError, probe
from apcodec_cli.format.bitstream import ChecksumError, Header, HeaderError, read_apc, write_apc
from apcodec_cli.models.limits import check_decodable

from helpers import chunk_offset, write_audio


def _crafted(codec: Codec, path: Path, frames: int = 6, **claims: int) -> Path:
    """A well-formed file (CRC right) whose header claims `claims`, with the tiny
    weights' fingerprint and random codes of the shape the header implies."""
    header = dataclasses.replace(codec.file_header(1, 48_000, frames * 320, frames * 320),
                                 **claims)
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 1 << header.bits_per_code,
                         (header.channels, header.n_codebooks, header.n_frames))
    write_apc(str(path), header, codes,
              levels=np.zeros((header.channels, header.n_level_segments), np.int8))
    return path


CLAIMS = {
    "16-bit codes": {"bits_per_code": 16},
    "8 codebooks": {"n_codebooks": 8},
    "a 1 Hz codec rate": {"sample_rate": 1},
    "a 1 Hz source": {"source_sample_rate": 1, "source_length": 1},
    "lengths that disagree": {"source_length": 10**9},
}


@pytest.mark.parametrize("claim", CLAIMS, ids=list(CLAIMS))
def test_info_and_decode_refuse_the_same_claims(codec, run, tmp_path, claim) -> None:
    path = _crafted(codec, tmp_path / "x.apc", **CLAIMS[claim])
    with pytest.raises(HeaderError) as refused:
        codec.decode_file(str(path), str(tmp_path / "x.wav"))
    report = run("info", "--json", path)
    assert report.exit_code == 1
    assert json.loads(report.stdout)["errors"] == [str(refused.value)]
    decoded = run("decode", "-q", path, tmp_path / "y.wav")
    assert decoded.exit_code == 1 and str(refused.value) in decoded.stderr
    assert not (tmp_path / "y.wav").exists()


def test_a_header_naming_a_preset_must_have_its_geometry(codec) -> None:
    header = codec.file_header(1, 48_000, 320, 320)
    check_decodable(header)
    with pytest.raises(HeaderError, match="n_codebooks=8"):
        check_decodable(dataclasses.replace(header, n_codebooks=8))


def test_many_channels_decode_in_passes_of_bounded_rows(codec, tmp_path) -> None:
    """1024 channels ran as one pass of 2048 rows (21 GB with the shipped model)."""
    path = _crafted(codec, tmp_path / "wide.apc", frames=4, channels=64)
    rows = []
    model_decode = codec.model.decode

    def counting(codes):
        rows.append(codes.shape[0])
        return model_decode(codes)

    codec.model.decode = counting
    try:
        codec.decode_file(str(path), str(tmp_path / "wide.wav"))
    finally:
        del codec.model.decode
    assert sum(rows) == 64 and max(rows) <= codec.engine.max_rows < 64
    assert sf.info(tmp_path / "wide.wav").channels == 64


def test_a_wav_labelled_1_hz_is_refused_not_read_as_hours(tmp_path) -> None:
    import io

    from apcodec_cli.format.wavstream import WavStreamReader

    sf.write(tmp_path / "slow.wav", np.zeros(48_000, np.int16), 1, subtype="PCM_16")
    with pytest.raises(AudioError, match="1 Hz"):
        probe(str(tmp_path / "slow.wav"))
    with pytest.raises(AudioError, match="1 Hz"):  # the same on a pipe
        WavStreamReader(io.BytesIO((tmp_path / "slow.wav").read_bytes()))


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.fixture
def damaged_file(codec, tmp_path) -> tuple[Path, Header]:
    """5 s (5 chunks) of tiny-model codes with one bit flipped in chunk 3."""
    write_audio(tmp_path / "in.wav", 5.0)
    header = codec.encode_file(str(tmp_path / "in.wav"), str(tmp_path / "x.apc"))
    (tmp_path / "clean.apc").write_bytes((tmp_path / "x.apc").read_bytes())
    _flip(tmp_path / "x.apc", chunk_offset((tmp_path / "x.apc").read_bytes(), 3) + 10)
    return tmp_path / "x.apc", header


def test_damage_fails_before_anything_is_decoded(codec, damaged_file, tmp_path) -> None:
    calls = []
    model_decode = codec.model.decode
    codec.model.decode = lambda codes: calls.append(1) or model_decode(codes)
    try:
        with pytest.raises(ChecksumError, match=r"chunk 3 .*--skip-damaged"):
            codec.decode_file(str(damaged_file[0]), str(tmp_path / "x.wav"))
    finally:
        del codec.model.decode
    assert calls == [] and not (tmp_path / "x.wav").exists()


def test_skip_damaged_writes_silence_and_names_the_chunk(run, damaged_file, tmp_path) -> None:
    path, header = damaged_file
    result = run("decode", "--skip-damaged", path, tmp_path / "x.wav")
    assert result.exit_code == 0, result.output
    assert "chunk 3 (3.00–4.00 s) is damaged: wrote silence there" in result.stderr
    assert run("decode", tmp_path / "clean.apc", tmp_path / "clean.wav").exit_code == 0
    audio, clean = sf.read(tmp_path / "x.wav")[0], sf.read(tmp_path / "clean.wav")[0]
    assert len(audio) == header.coded_length
    assert not audio[3 * 48_000:4 * 48_000].any() and clean[3 * 48_000:4 * 48_000].any()
    assert np.array_equal(audio[:2 * 48_000], clean[:2 * 48_000])  # far from the damage
    assert read_apc(str(tmp_path / "clean.apc"))[0] == header


def test_names_that_are_not_utf8_convert(run, tmp_path) -> None:
    source = tmp_path / os.fsdecode(b"caf\xe9.wav")
    write_audio(tmp_path / "plain.wav", 0.3)
    (tmp_path / "plain.wav").rename(source)
    assert run("encode", "-q", source, tmp_path / "x.apc").exit_code == 0
    result = run("decode", "-q", tmp_path / "x.apc", tmp_path / os.fsdecode(b"\xff.flac"))
    assert result.exit_code == 0, result.output
    assert sf.info(os.fsencode(tmp_path / os.fsdecode(b"\xff.flac"))).frames == 0.3 * 48_000
