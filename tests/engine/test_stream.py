"""The streamable model: causal layers, the incremental engine, and files made with it."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from apcodec_cli.nn import causal, spectral
from apcodec_cli.nn.grn import CausalGRN
from apcodec_cli.engine import streamnet
from apcodec_cli.format.bitstream import read_apc
from apcodec_cli.models.weights import load
from apcodec_cli.codec import Codec
from apcodec_cli.nn.config import get_preset
from apcodec_cli.nn.model import APCodec
from apcodec_cli.engine.stream import (StreamDecoder, StreamEncoder, algorithmic_latency,
                                decoder_history)
from helpers import tone, write_audio

pytestmark = pytest.mark.usefixtures("one_thread")


def _model(seed: int = 0, preset: str = "tiny-s") -> APCodec:
    torch.manual_seed(seed)
    model = APCodec(get_preset(preset)).eval()
    for name, param in model.named_parameters():
        if ".grn." in name:  # GRN is the identity at initialisation: make it count
            param.data.normal_(0.0, 0.5)
    return model


def _pieces(total: int, sizes: list[int], seed: int) -> list[tuple[int, int]]:
    rng, out, pos = random.Random(seed), [], 0
    while pos < total:
        n = rng.choice(sizes)
        out.append((pos, min(total, pos + n)))
        pos += n
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_pieces_of_any_size_give_the_codes_and_samples_of_the_whole(seed: int) -> None:
    model = _model(seed)
    wav = torch.from_numpy(tone(1.0, channels=2)) * 0.8  # (2, 48 000): 150 frames
    with torch.inference_mode():
        codes = model.encode(wav.unsqueeze(1))
        audio = model.decode(codes)[:, 0]
    encoder = StreamEncoder(model)
    pieces = [encoder.push(wav[:, a:b])
              for a, b in _pieces(wav.shape[1], [0, 1, 39, 40, 319, 320, 321, 4000], seed)]
    assert torch.equal(torch.cat(pieces, -1), codes)
    decoder = StreamDecoder(model)
    out = [decoder.push(codes[..., a:b]) for a, b in _pieces(codes.shape[-1], [0, 1, 2, 7, 30],
                                                               seed)]
    streamed = torch.cat(out + [decoder.flush()], -1)
    assert streamed.shape == audio.shape
    torch.testing.assert_close(streamed, audio, atol=1e-5, rtol=0)


def test_streams_use_the_models_current_weights() -> None:
    """The packed networks are cached per model; loading other weights re-packs them."""
    model, other = _model(0), _model(1)
    wav = torch.from_numpy(tone(0.3)) * 0.8
    StreamEncoder(model).push(wav)  # packs the first weights
    model.load_state_dict(other.state_dict())  # copies in place
    with torch.inference_mode():
        expected = other.encode(wav.unsqueeze(1))
    assert not torch.equal(StreamEncoder(_model(0)).push(wav), expected)
    assert torch.equal(StreamEncoder(model).push(wav), expected)


def test_the_model_is_causal_the_future_changes_nothing_before_it() -> None:
    model = _model()
    wav = torch.from_numpy(tone(0.5)).unsqueeze(1)
    other = wav.clone()
    other[..., 9600:] = torch.randn_like(other[..., 9600:])  # change everything after 0.2 s
    with torch.inference_mode():
        a, b = model.encode(wav), model.encode(other)
        assert torch.equal(a[..., :30], b[..., :30])  # frames ending by 0.2 s
        assert not torch.equal(a, b)
        y, z = model.decode(a), model.decode(b)
    final = 30 * 320 - 280  # the last 280 samples of frame 29 wait for frame 30
    torch.testing.assert_close(y[..., :final], z[..., :final], atol=1e-6, rtol=0)
    assert not torch.allclose(y[..., final:30 * 320], z[..., final:30 * 320], atol=1e-3)


def test_a_stream_of_n_samples_is_final_600_samples_later() -> None:
    """Output is released once no later input can change it: 320 + 280 samples of lag."""
    model = _model()
    config = model.config
    encoder, decoder = StreamEncoder(model), StreamDecoder(model)
    released = [0]
    for _ in range(10):
        released.append(released[-1] + decoder.push(encoder.push(torch.zeros(1, 320))).shape[-1])
    assert released[1:] == [320 * n - 280 for n in range(1, 11)]
    assert algorithmic_latency(config) == 600  # worst case: 12.5 ms at 48 kHz


def test_causal_layers_match_their_plain_definitions() -> None:
    """The fast paths against the textbook operations they stand for."""
    torch.manual_seed(0)
    x = torch.randn(2, 6, 40)
    up = causal.CausalUpsample(6, 5, stride=8)
    plain = F.conv_transpose1d(x, up.weight, up.bias, stride=8)[..., :40 * 8]
    torch.testing.assert_close(up(x), plain)
    down = causal.CausalDownsample(6, 5, kernel_size=7, stride=8)
    x8 = torch.randn(2, 6, 64)
    plain = F.conv1d(x8[..., 1:], down.weight, down.bias, stride=8)  # frames 8n+1 .. 8n+7
    torch.testing.assert_close(down(x8), plain)
    for groups, c_out in ((1, 5), (6, 6)):
        conv = causal.CausalConv1d(6, c_out, 7, groups=groups)
        plain = F.conv1d(F.pad(x, (6, 0)), conv.weight, conv.bias, groups=groups)
        torch.testing.assert_close(conv(x), plain)
    grn = CausalGRN(6, window=5)
    torch.nn.init.normal_(grn.gamma)
    xt = x.transpose(1, 2)  # (B, T, C)
    energy = F.pad(xt.square(), (0, 0, 4, 0)).unfold(1, 5, 1).sum(-1)  # last 5 frames
    norm = energy.sqrt()
    plain = grn.beta + xt + grn.gamma * xt * norm / (norm.mean(-1, keepdim=True) + grn.eps)
    torch.testing.assert_close(grn(xt), plain, atol=1e-5, rtol=0)


def test_the_streamed_grn_ring_sums_the_last_window_frames_across_wrap_arounds() -> None:
    energy = torch.rand(2, 1, 40, 6)
    ring = streamnet._Ring(energy, window=5)
    sums = torch.cat([ring.push(energy[..., a:a + n, :])
                      for a, n in zip(range(0, 40, 3), [3] * 13 + [1])], dim=-2)
    plain = F.pad(energy, (0, 0, 4, 0)).unfold(-2, 5, 1).sum(-1)
    torch.testing.assert_close(sums.float(), plain, atol=1e-6, rtol=0)


def test_the_full_size_streamable_preset_streams_like_the_whole() -> None:
    """tiny-s above, and the shipped preset's shapes and 200-frame GRN window here."""
    model = _model(3, "apcodec-s-48k-small")
    wav = torch.from_numpy(tone(1.0)) * 0.8  # 150 frames: pieces longer than the window
    with torch.inference_mode():
        codes = model.encode(wav.view(1, 1, -1))
        audio = model.decode(codes)[:, 0]
    encoder, decoder = StreamEncoder(model), StreamDecoder(model)
    pieces = [encoder.push(wav.view(1, -1)[:, a:b])
              for a, b in _pieces(wav.shape[-1], [320, 12_000], 3)]
    assert torch.equal(torch.cat(pieces, -1), codes)
    out = [decoder.push(codes[..., a:b]) for a, b in _pieces(codes.shape[-1], [1, 40], 3)]
    torch.testing.assert_close(torch.cat(out + [decoder.flush()], -1), audio, atol=1e-5,
                               rtol=0)


def test_causal_grn_pools_over_its_window_only() -> None:
    grn = CausalGRN(4, window=3)
    torch.nn.init.normal_(grn.gamma)
    x = torch.randn(1, 10, 4)
    y = grn(x)
    late = x.clone()
    late[:, :5] = 100.0  # frames more than 3 back no longer matter at frame 7
    assert torch.allclose(grn(late)[:, 7:], y[:, 7:], atol=1e-6)


def test_a_non_causal_models_weights_load_into_its_causal_twin() -> None:
    full, streamable = APCodec(get_preset("apcodec-48k-small")), \
        APCodec(get_preset("apcodec-s-48k-small"))
    streamable.load_state_dict(full.state_dict())  # same names and shapes


def test_causal_stft_round_trip_is_exact_away_from_the_end() -> None:
    config = get_preset("tiny-s")
    wav = torch.from_numpy(tone(0.2)).unsqueeze(1)
    log_amp, phase = spectral.analyse(wav, config)
    back = spectral.synthesise(log_amp, phase, config)
    keep = wav.shape[-1] - (config.win_length - config.hop_length)
    torch.testing.assert_close(back[..., :keep], wav[..., :keep], atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def stream_codec(tiny_stream_weights: Path) -> Codec:
    return Codec.load(tiny_stream_weights, device="cpu")


def test_files_from_the_streamable_model_say_so_and_decode_exactly(
        stream_codec: Codec, tmp_path: Path) -> None:
    write_audio(tmp_path / "in.wav", 2.3, rate=44_100, channels=2)
    header = stream_codec.encode_file(str(tmp_path / "in.wav"), tmp_path / "x.apc")
    assert header.streamable and header.n_frames == -(-header.coded_length // 320) + 1
    _, codes = read_apc(tmp_path / "x.apc")
    audio, rate = sf.read(tmp_path / "in.wav", dtype="float32")
    same = codes == stream_codec.encode(audio.T, rate)  # whole-signal resampling, whole stream
    assert same.mean() > 0.99
    result = stream_codec.decode_file(tmp_path / "x.apc", tmp_path / "out.wav",
                                      original_rate=True)
    assert (result.sample_rate, result.channels, result.frames) == (44_100, 2, 101_430)


def test_a_range_decodes_to_the_same_samples_as_the_whole(stream_codec: Codec,
                                                          tmp_path: Path) -> None:
    write_audio(tmp_path / "in.wav", 3.0)
    stream_codec.encode_file(str(tmp_path / "in.wav"), tmp_path / "x.apc")
    stream_codec.decode_file(tmp_path / "x.apc", tmp_path / "all.wav", subtype="FLOAT")
    stream_codec.decode_file(tmp_path / "x.apc", tmp_path / "part.wav", start=1.7,
                             duration=0.5, subtype="FLOAT")
    whole, _ = sf.read(tmp_path / "all.wav")
    part, _ = sf.read(tmp_path / "part.wav")
    assert decoder_history(stream_codec.config) * 320 < 1.7 * 48_000  # a real warm start
    np.testing.assert_allclose(part, whole[81_600:81_600 + 24_000], atol=1e-5)


def test_many_channels_run_in_groups_with_the_codes_of_each_alone(tiny_stream_weights,
                                                                    monkeypatch) -> None:
    """Channels run as streams of GROUP_CHANNELS (bounded working memory), coding each
    channel as it codes alone; channels whose states exceed memory are refused."""
    from apcodec_cli import machine
    from apcodec_cli.engine import stream
    from apcodec_cli.engine.base import CodeFrames

    engine = stream.StreamEngine(load(tiny_stream_weights).model)
    monkeypatch.setattr(stream, "GROUP_CHANNELS", 3)
    wav = tone(0.3, channels=7)
    codes = np.concatenate(list(engine.encode([wav], wav.shape[1], 7)), axis=2)
    alone = np.concatenate(list(engine.encode([wav[5:6]], wav.shape[1], 1)), axis=2)
    assert codes.shape[0] == 7 and np.array_equal(codes[5:6], alone)
    frames = CodeFrames(lambda a, b: codes[..., a:b], codes.shape[-1], 10)
    audio = np.concatenate(list(engine.decode(frames)), axis=1)
    one = CodeFrames(lambda a, b: codes[5:6, :, a:b], codes.shape[-1], 10)
    np.testing.assert_allclose(audio[5:6], np.concatenate(list(engine.decode(one)), axis=1),
                               atol=1e-6)
    monkeypatch.setattr(machine, "available_memory", lambda: 1000)
    with pytest.raises(machine.MachineLimitError, match="7 channels of a streamable"):
        list(engine.decode(frames))
