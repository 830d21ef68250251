"""File-level encode/decode: lengths, rates, channels, ranges, weights checks, golden file."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from apcodec_cli.format.bitstream import ApcReader, WeightsMismatchError, read_apc, write_apc
from apcodec_cli.codec import Codec
from apcodec_cli.models.weights import load
from apcodec_cli.errors import ApcodecError

from helpers import make_weights, write_audio
from golden import GOLDEN_PATH, golden_codes, golden_header


def test_stereo_44k_round_trips_with_its_length_and_channels(codec: Codec, tmp_path) -> None:
    write_audio(tmp_path / "in.wav", 2.1234, rate=44100, channels=2)
    header = codec.encode_file(str(tmp_path / "in.wav"), str(tmp_path / "x.apc"))
    assert (header.channels, header.source_sample_rate) == (2, 44100)
    assert header.source_length == sf.info(tmp_path / "in.wav").frames
    codec.decode_file(str(tmp_path / "x.apc"), str(tmp_path / "48k.wav"))
    codec.decode_file(str(tmp_path / "x.apc"), str(tmp_path / "orig.wav"), original_rate=True)
    info48, info_orig = sf.info(tmp_path / "48k.wav"), sf.info(tmp_path / "orig.wav")
    assert (info48.samplerate, info48.channels, info48.frames) == (48000, 2, header.coded_length)
    assert (info_orig.samplerate, info_orig.channels) == (44100, 2)
    assert info_orig.frames == header.source_length


def test_mono_downmix(codec: Codec, tmp_path) -> None:
    write_audio(tmp_path / "in.flac", 1.0, channels=3)
    assert codec.encode_file(str(tmp_path / "in.flac"), str(tmp_path / "x.apc"), mono=True).channels == 1


def test_file_codes_equal_array_codes(codec: Codec, tmp_path) -> None:
    audio = write_audio(tmp_path / "in.wav", 3.3, rate=22050, subtype="FLOAT")
    codec.encode_file(str(tmp_path / "in.wav"), str(tmp_path / "x.apc"))
    assert np.array_equal(read_apc(str(tmp_path / "x.apc"))[1], codec.encode(audio, 22050))


def test_sixty_seconds_cost_at_most_6_12_kbps(codec: Codec, tmp_path) -> None:
    sf.write(tmp_path / "in.wav", np.zeros(60 * 48000, np.int16), 48000)
    header = codec.encode_file(str(tmp_path / "in.wav"), str(tmp_path / "x.apc"))
    size = (tmp_path / "x.apc").stat().st_size
    # Weights without code tables: a 63-byte header plus the model name, then 60 chunks of
    # 5 level gains, 750 code bytes and a 4-byte CRC, then the index (a u32 per chunk, its
    # CRC and mark): bit-packed, the most a file costs (range-coded chunks are smaller).
    assert size == 63 + len("tiny") + 60 * (5 + 750 + 4) + 60 * 4 + 8
    assert size * 8 / 60 <= 6120


@pytest.mark.parametrize("start,duration", [(0.0, 1.0), (1.37, 2.0), (2.9, None), (4.0, 9.0)])
def test_time_range_equals_the_same_slice_of_a_full_decode(codec: Codec, tmp_path, start, duration) -> None:
    write_audio(tmp_path / "in.wav", 4.5)
    codec.encode_file(str(tmp_path / "in.wav"), str(tmp_path / "x.apc"))
    full, part = io.BytesIO(), io.BytesIO()
    codec.decode_file(str(tmp_path / "x.apc"), full, subtype="FLOAT")
    codec.decode_file(str(tmp_path / "x.apc"), part, start=start, duration=duration, subtype="FLOAT")
    full.seek(0), part.seek(0)
    whole, piece = sf.read(full)[0], sf.read(part)[0]
    first = round(start * 48000)
    expected = whole[first:] if duration is None else whole[first:first + round(duration * 48000)]
    assert piece.shape == expected.shape
    np.testing.assert_allclose(piece, expected, atol=1e-4)


def test_range_decoding_reads_only_the_chunks_it_needs(codec: Codec, tmp_path, monkeypatch) -> None:
    write_audio(tmp_path / "in.wav", 6.0)
    codec.encode_file(str(tmp_path / "in.wav"), str(tmp_path / "x.apc"))
    read = []
    original = ApcReader.read_chunk
    monkeypatch.setattr(ApcReader, "read_chunk", lambda self, i: read.append(i) or original(self, i))
    codec.decode_file(str(tmp_path / "x.apc"), io.BytesIO(), start=3.2, duration=0.5)
    assert set(read) <= {2, 3, 4}


def test_other_weights_are_refused(codec: Codec, tmp_path) -> None:
    write_audio(tmp_path / "in.wav", 0.5)
    codec.encode_file(str(tmp_path / "in.wav"), str(tmp_path / "x.apc"))
    other = Codec(load(make_weights(tmp_path / "other.pt", seed=1)))
    with pytest.raises(WeightsMismatchError, match="other weights"):
        other.decode_file(str(tmp_path / "x.apc"), io.BytesIO())


def test_empty_input_gives_an_empty_output(codec: Codec, tmp_path) -> None:
    sf.write(tmp_path / "in.wav", np.zeros(0, np.int16), 16000)
    codec.encode_file(str(tmp_path / "in.wav"), str(tmp_path / "x.apc"))
    codec.decode_file(str(tmp_path / "x.apc"), str(tmp_path / "out.wav"), original_rate=True)
    assert sf.info(tmp_path / "out.wav").frames == 0


def test_golden_file_keeps_decoding_to_the_same_codes() -> None:
    header, codes = read_apc(str(GOLDEN_PATH))
    assert header == golden_header()
    assert np.array_equal(codes, golden_codes())
    out = io.BytesIO()
    write_apc(out, golden_header(), golden_codes())
    assert out.getvalue() == GOLDEN_PATH.read_bytes()


def test_loading_onto_cuda_turns_tf32_off(tiny_weights, monkeypatch) -> None:
    """`Codec.load` onto CUDA, acted out on the CPU (tests/test_gpu.py does it on a GPU):
    cuDNN's default TF32 would round convolutions to a 10-bit mantissa."""
    import torch

    from apcodec_cli import runtime
    from apcodec_cli.models import weights

    # Saved and restored by hand: torch's flag objects are properties that monkeypatch's
    # undo cannot always delete (cuBLASModule has no instance attribute to remove).
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        Codec.load(tiny_weights, device="cpu")
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
        real_load = weights.load
        monkeypatch.setattr(runtime, "resolve_device", lambda name: torch.device(name))
        monkeypatch.setattr(weights, "load",
                            lambda path, device, tables=None: real_load(path, "cpu", tables))
        Codec.load(tiny_weights, device="cuda")
        assert not torch.backends.cudnn.allow_tf32
        assert not torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_library_writes_to_a_path_leave_nothing_when_they_fail(codec: Codec, tmp_path) -> None:
    audio = write_audio(tmp_path / "in.wav", 3.0, subtype="FLOAT")
    audio[0, 2 * 48_000] = np.nan  # read in the second block: the header is out by then
    sf.write(tmp_path / "nan.wav", audio.T, 48_000, subtype="FLOAT")
    with pytest.raises(ApcodecError):
        codec.encode_file(str(tmp_path / "nan.wav"), str(tmp_path / "x.apc"))
    header = codec.encode_file(str(tmp_path / "in.wav"), str(tmp_path / "y.apc"))
    blocks = codec.engine.decode
    codec.engine.decode = lambda *a: (_ for _ in [np.zeros((1, 9600), np.float32), None])
    try:
        with pytest.raises(Exception):
            codec.decode_file(str(tmp_path / "y.apc"), str(tmp_path / "y.wav"))
    finally:
        codec.engine.decode = blocks
    codes = read_apc(str(tmp_path / "y.apc"))[1]
    gains = np.zeros((1, header.n_level_segments), np.int8)
    with pytest.raises(ApcodecError):  # one frame fewer than the header announces
        write_apc(str(tmp_path / "z.apc"), header, codes[:, :, :-1], levels=gains)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "nan.wav", "y.apc"]


def test_decoded_level_follows_the_source_segment_by_segment(codec: Codec, tmp_path) -> None:
    """Level gains (format version 3): whatever level the (untrained) decoder gives, each
    0.2 s of the decoded stereo file comes back within 0.5 dB of the source's, on both
    sides of a level step of 20 dB; decoded without the gains (the same codes), it does
    not. (Next to the step the decoder smears loud sound into the quiet segment, which a
    gain interpolated between 0.2 s segments cannot follow: not checked there.)"""
    rng = np.random.default_rng(3)
    t = np.arange(3 * 48_000)
    audio = rng.standard_normal((2, t.size)) * np.where(t < 1.5 * 48_000, 0.02, 0.2)
    audio[1] *= 0.5
    sf.write(tmp_path / "in.wav", audio.T.astype(np.float32), 48_000, subtype="FLOAT")
    header = codec.encode_file(str(tmp_path / "in.wav"), str(tmp_path / "x.apc"))
    assert header.has_levels and header.level_samples == 9600
    codec.decode_file(str(tmp_path / "x.apc"), str(tmp_path / "out.wav"), subtype="FLOAT")
    decoded = sf.read(tmp_path / "out.wav", dtype="float64", always_2d=True)[0].T
    plain = codec.decode(read_apc(str(tmp_path / "x.apc"))[1])[:, :t.size]
    segment = np.arange(t.size) // 9600

    def error(x: np.ndarray) -> np.ndarray:
        return np.array([10 * np.log10(np.bincount(segment, x[c].astype(np.float64) ** 2)
                                       / np.bincount(segment, audio[c] ** 2)) for c in range(2)])

    away = np.r_[0:6, 9:15]  # segments clear of the step at 1.5 s
    assert np.abs(error(decoded)[:, away]).max() < 0.5
    assert np.abs(error(plain)[:, away]).max() > 1.0
