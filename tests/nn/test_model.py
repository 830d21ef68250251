"""Configuration, STFT front end, quantizer and model: shapes and exact properties."""

from __future__ import annotations

import pytest
import torch

from apcodec_cli.nn import spectral
from apcodec_cli.nn.config import PRESETS, CodecConfig, get_preset
from apcodec_cli.nn.model import APCodec
from apcodec_cli.nn.quantizer import ResidualVQ


def test_reference_bitrate_is_exactly_6000() -> None:
    config = get_preset("apcodec-48k")
    assert config.frame_rate == 150
    assert config.bits_per_code == 10
    assert config.bitrate == 6000
    assert all(c.bitrate == 6000 for c in PRESETS.values())


def test_config_rejects_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ValueError, match="unknown configuration keys: colour"):
        CodecConfig.from_dict({"colour": 1})
    with pytest.raises(ValueError, match="power of two"):
        CodecConfig(codebook_size=1000)
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("nope")
    assert CodecConfig.from_dict(get_preset("tiny").to_dict()) == get_preset("tiny")


def test_reference_parameter_counts_match_the_paper() -> None:
    model = APCodec(get_preset("apcodec-48k"))
    millions = lambda m: sum(p.numel() for p in m.parameters()) / 1e6  # noqa: E731
    assert millions(model.encoder) + millions(model.quantizer) == pytest.approx(6.9, abs=0.05)
    assert millions(model.quantizer) == pytest.approx(0.14, abs=0.01)
    assert millions(model.decoder) == pytest.approx(10.2, abs=0.05)


def test_stft_round_trip_is_exact() -> None:
    config = get_preset("tiny")
    wav = torch.randn(2, 1, 10 * config.samples_per_frame)
    log_amp, phase = spectral.analyse(wav, config)
    assert log_amp.shape == (2, config.n_bins, 10 * config.downsample)
    restored = spectral.synthesise(log_amp, phase, config)
    # exp(log(|X| + 1e-5)) adds 1e-5 to every magnitude: a tiny, bounded error.
    assert torch.allclose(restored, wav, atol=1e-3)
    assert torch.allclose(spectral.istft(spectral.stft(wav, config), config), wav, atol=1e-5)


def test_stft_rejects_lengths_off_the_frame_grid() -> None:
    with pytest.raises(ValueError, match="not a multiple of 320"):
        spectral.stft(torch.zeros(1, 1, 1000), get_preset("tiny"))


def test_quantizer_encode_decode_equals_forward() -> None:
    torch.manual_seed(0)
    rvq = ResidualVQ(latent_dim=32, n_codebooks=4, codebook_size=1024, codebook_dim=8)
    latent = torch.randn(3, 32, 50)
    out = rvq(latent)
    codes = rvq.encode(latent)
    assert codes.shape == (3, 4, 50)
    assert torch.equal(codes, out.codes)
    assert torch.allclose(rvq.decode(codes), out.latent, atol=1e-5)
    assert out.codebook_loss > 0 and out.commitment_loss > 0


def test_quantizer_passes_gradients_straight_through() -> None:
    rvq = ResidualVQ(latent_dim=8, n_codebooks=2, codebook_size=16, codebook_dim=4)
    latent = torch.randn(1, 8, 5, requires_grad=True)
    rvq(latent).latent.sum().backward()
    assert latent.grad is not None and latent.grad.abs().sum() > 0


def test_model_shapes_and_codes_agree_with_training_pass() -> None:
    torch.manual_seed(0)
    config = get_preset("tiny")
    model = APCodec(config).eval()
    wav = torch.randn(2, 1, 7 * config.samples_per_frame)
    with torch.no_grad():
        codes = model.encode(wav)
        out = model(wav)
        decoded = model.decode(codes)
    assert codes.shape == (2, config.n_codebooks, 7) and codes.dtype == torch.int64
    assert int(codes.max()) < config.codebook_size
    assert torch.equal(out.quantized.codes, codes)
    assert decoded.shape == wav.shape == out.wav.shape
    assert torch.allclose(decoded, out.wav, atol=1e-4)
    assert out.phase.abs().max() <= torch.pi + 1e-6


def test_weight_norm_layers_are_the_stride_fusion_and_head_convolutions() -> None:
    model = APCodec(get_preset("tiny"))
    layers = list(model.weight_norm_layers())
    assert len(layers) == 9
    assert all(isinstance(m, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)) for m in layers)


def test_causal_grn_gradients_stay_finite_on_a_dead_channel() -> None:
    """A channel that is exactly zero over the GRN window (a dead channel after GELU) once
    made every gradient of a distillation run NaN: sqrt's gradient at 0 is infinite."""
    from apcodec_cli.nn.grn import CausalGRN

    grn = CausalGRN(4, window=3)
    with torch.no_grad():
        grn.gamma.fill_(0.5)
    x = torch.randn(2, 6, 4)
    x[..., 1] = 0.0  # dead channel
    x.requires_grad_(True)
    grn(x).square().sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in grn.parameters())
