"""Weights with code tables: range-coded (version 2) files end to end, fingerprints, the
same decoded audio as version 1, and refusal of other tables."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from apcodec_cli import live
from apcodec_cli.format.audio import WavStreamWriter
from apcodec_cli.format.wavstream import WavStreamReader
from apcodec_cli.models import weights
from apcodec_cli.format.bitstream import (ApcReader, CodeTablesMismatchError, WeightsMismatchError, read_apc,
                                   read_header)
from apcodec_cli.codec import Codec
from apcodec_cli.train.codetables import TableCounts

from helpers import make_weights, tone, write_audio

pytestmark = pytest.mark.usefixtures("one_thread")


def with_tables(source: Path, out: Path, n_buckets: int = 4, seconds: float = 6.0) -> Path:
    """`source` plus code tables fitted to its codes of a few test signals, in `out`."""
    codec = Codec.load(source, device="cpu")
    config = codec.config
    counts = TableCounts(config.n_codebooks, 1 << config.bits_per_code)
    for seed in range(2):
        counts.add(codec.encode(tone(seconds, seed=seed)))
    tables = counts.fit(n_buckets=n_buckets, iterations=3)  # few rounds: tests stay fast
    weights.store_code_tables(source, tables, out, data="tones")
    return out


@pytest.fixture(scope="module")
def coded(tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return with_tables(tiny_weights, tmp_path_factory.mktemp("coded") / "tiny-tables.pt")


def test_tables_change_the_weights_fingerprint_not_the_network(tiny_weights: Path,
                                                               coded: Path) -> None:
    plain, tabled = weights.load(tiny_weights), weights.load(coded)
    assert plain.code_tables is None and plain.fingerprint == plain.network_fingerprint
    assert tabled.network_fingerprint == plain.fingerprint
    assert tabled.fingerprint == tabled.code_tables.weights_fingerprint(plain.fingerprint)
    assert tabled.fingerprint != plain.fingerprint and tabled.info == plain.info
    for name, tensor in plain.model.state_dict().items():
        assert torch.equal(tensor, tabled.model.state_dict()[name])
    payload = torch.load(coded, weights_only=True)
    assert payload["code_tables"]["info"] == {"data": "tones"}
    assert [p.name for p in coded.parent.iterdir()] == [coded.name]  # no temporary left


def test_saving_a_model_with_tables_writes_what_storing_them_does(coded: Path,
                                                                   tmp_path: Path) -> None:
    tabled = weights.load(coded)
    assert tabled.tables_info == {"data": "tones"}
    out = tmp_path / "saved.pt"
    fp = weights.save(out, tabled.model, trained=tabled.trained, code_tables=tabled.code_tables,
                      tables_info=tabled.tables_info)
    again = weights.load(out)
    assert fp == again.fingerprint == tabled.fingerprint  # float16 round trip is exact
    assert again.tables_info == tabled.tables_info
    for key, value in tabled.code_tables.to_arrays().items():
        assert np.array_equal(again.code_tables.to_arrays()[key], value)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # one write, no temporary left


def test_range_coded_files_decode_to_the_same_audio_as_bit_packed(
        tiny_weights: Path, coded: Path, tmp_path: Path) -> None:
    """Weights without code tables write every chunk bit-packed ("v1.apc"), weights with
    them range-code ("v2.apc"): both version 3, same codes, same gains, same audio."""
    write_audio(tmp_path / "in.wav", 3.3, rate=44_100, channels=2)
    v1, v2 = Codec.load(tiny_weights, device="cpu"), Codec.load(coded, device="cpu")
    h1 = v1.encode_file(str(tmp_path / "in.wav"), str(tmp_path / "v1.apc"))
    h2 = v2.encode_file(str(tmp_path / "in.wav"), str(tmp_path / "v2.apc"))
    assert (h1.version, h2.version) == (3, 3) and not h1.needs_tables and h2.needs_tables
    assert h2.network_fingerprint == h1.fingerprint == h1.network_fingerprint
    np.testing.assert_array_equal(read_apc(tmp_path / "v1.apc")[1],
                                  read_apc(tmp_path / "v2.apc", v2.weights.code_tables)[1])
    with open(tmp_path / "v1.apc", "rb") as a, open(tmp_path / "v2.apc", "rb") as b:
        np.testing.assert_array_equal(ApcReader(a).levels(), ApcReader(b).levels())
    assert (tmp_path / "v2.apc").stat().st_size < 0.8 * (tmp_path / "v1.apc").stat().st_size
    v1.decode_file(str(tmp_path / "v1.apc"), str(tmp_path / "v1.wav"), subtype="FLOAT")
    v2.decode_file(str(tmp_path / "v2.apc"), str(tmp_path / "v2.wav"), subtype="FLOAT")
    v2.decode_file(str(tmp_path / "v1.apc"), str(tmp_path / "v1b.wav"), subtype="FLOAT")
    a, b, c = (sf.read(tmp_path / f"{n}.wav", dtype="float32")[0] for n in ("v1", "v2", "v1b"))
    assert np.array_equal(a, b) and np.array_equal(a, c)  # bit-identical audio
    part = io.BytesIO()
    v2.decode_file(str(tmp_path / "v2.apc"), part, start=1.0, duration=0.5, subtype="FLOAT")
    assert sf.info(io.BytesIO(part.getvalue())).frames == 24_000


def test_other_tables_or_none_are_refused(tiny_weights: Path, coded: Path,
                                          tmp_path: Path) -> None:
    write_audio(tmp_path / "in.wav", 1.0)
    Codec.load(coded, device="cpu").encode_file(str(tmp_path / "in.wav"),
                                                str(tmp_path / "x.apc"))
    other = with_tables(tiny_weights, tmp_path / "other.pt", n_buckets=2, seconds=2.0)
    for path, match in ((other, "other code tables"), (tiny_weights, "none are loaded")):
        with pytest.raises(CodeTablesMismatchError, match=match):
            Codec.load(path, device="cpu").decode_file(str(tmp_path / "x.apc"), io.BytesIO())
    network = with_tables(make_weights(tmp_path / "n.pt", seed=1), tmp_path / "n2.pt",
                          seconds=2.0)
    with pytest.raises(WeightsMismatchError) as info:
        Codec.load(network, device="cpu").decode_file(str(tmp_path / "x.apc"), io.BytesIO())
    assert not isinstance(info.value, CodeTablesMismatchError)


def test_command_line_info_and_refusal(cli, coded: Path, tiny_weights: Path,
                                       tmp_path: Path) -> None:
    write_audio(tmp_path / "in.wav", 2.0)
    assert cli("encode", "-q", "-w", coded, tmp_path / "in.wav", tmp_path / "x.apc"
               ).exit_code == 0
    report = cli("info", tmp_path / "x.apc").output
    assert "range-coded with level gains (format 3)" in report
    assert "6000 bit/s nominal" in report and "level gains  10 segments of 0.2 s" in report
    assert "% of nominal" in report and "all intact" in report
    refused = cli("decode", "-q", "-w", tiny_weights, tmp_path / "x.apc", tmp_path / "o.wav")
    assert refused.exit_code == 1 and "code tables" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_streamable_weights_with_tables(tiny_stream_weights: Path, tmp_path: Path) -> None:
    coded = with_tables(tiny_stream_weights, tmp_path / "s.pt", seconds=0.5)
    codec = Codec.load(coded, device="cpu")
    write_audio(tmp_path / "in.wav", 0.6)
    header = codec.encode_file(str(tmp_path / "in.wav"), str(tmp_path / "x.apc"))
    assert header.streamable and header.version == 3
    codec.decode_file(str(tmp_path / "x.apc"), str(tmp_path / "file.wav"), subtype="FLOAT")
    with open(tmp_path / "x.apc", "rb") as f:  # front to back, as a pipe delivers it
        sink_bytes = io.BytesIO()
        sink = WavStreamWriter(sink_bytes, 48_000, 1, True)
        live.decode(codec.model, read_header(f), f, sink, tables=codec.weights.code_tables)
    piped = WavStreamReader(io.BytesIO(sink_bytes.getvalue())).read(10**6)
    whole = sf.read(tmp_path / "file.wav", dtype="float32")[0]
    np.testing.assert_allclose(piped[0], whole, atol=1e-6)
