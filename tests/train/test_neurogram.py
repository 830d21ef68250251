"""The neurogram loss (what ViSQOL sees, differentiable): properties, CPU, fast."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from apcodec_cli.train import neurogram as ng
from apcodec_cli.train.config import get_train_preset

pytestmark = pytest.mark.usefixtures("one_thread")

RATE = 48_000


def _tones(samples: int = 9600, flutter: float = 0.0, gain: float = 1.0,
           seed: int = 0) -> torch.Tensor:
    """(1, 1, T) chord of partials at 220 Hz·k, each with its own random amplitude
    modulation of depth `flutter` (0: steady), times `gain`."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(samples, dtype=torch.float64) / RATE
    out = torch.zeros(samples, dtype=torch.float64)
    for k in range(1, 16):
        rate = 3 + 9 * torch.rand((), generator=g, dtype=torch.float64)
        phase = 2 * math.pi * torch.rand((), generator=g, dtype=torch.float64)
        envelope = 1 + flutter * torch.sin(2 * math.pi * rate * t + phase)
        out += envelope * torch.sin(2 * math.pi * 220 * k * t) / k
    return (0.1 * gain * out).float().view(1, 1, -1)


def test_centres_span_the_erb_scale_and_a_tone_lands_in_its_band() -> None:
    centres = ng.centre_frequencies(50.0, 24_000.0, 32)
    assert centres[-1].item() == pytest.approx(50.0)
    assert torch.all(centres[:-1] > centres[1:])
    neurogram = ng.Neurogram(RATE)
    assert (neurogram.frame, neurogram.hop) == (3840, 960)
    t = torch.arange(9600) / RATE
    levels = neurogram(torch.sin(2 * math.pi * 1000 * t).view(1, 1, -1))
    assert levels.shape == (1, 32, 7)
    nearest = torch.argmin((neurogram.centres - 1000).abs())
    assert torch.all(levels[0].argmax(dim=0) == nearest)
    # A full-scale sine at a band's centre: mean square 1/2, times 3/8 under the Hann
    # window; the level is 10·log10 of the RMS, 5·log10(3/16) = -3.6 dB.
    centred = torch.sin(2 * math.pi * neurogram.centres[nearest] * t).view(1, 1, -1)
    assert neurogram(centred)[0, nearest].mean().item() == pytest.approx(-3.63, abs=0.05)
    with pytest.raises(ValueError, match="3840"):
        neurogram(torch.zeros(1, 1, 3000))


def test_similarity_map_is_visqols_nsim() -> None:
    nsim = pytest.importorskip("visqol.nsim")
    g = torch.Generator().manual_seed(4)
    reference = torch.rand(1, 32, 30, generator=g, dtype=torch.float64) * 40
    decoded = reference + 3 * torch.randn(1, 32, 30, generator=g, dtype=torch.float64)
    ours = ng.similarity_map(reference, decoded, c1=nsim.C1, c3=nsim.C3)[0].mean(dim=-1)
    theirs = nsim.measure_patch_similarity(reference[0].numpy(), decoded[0].numpy())
    np.testing.assert_allclose(ours.numpy(), theirs.freq_band_means, atol=1e-8)


def test_loss_scores_texture_not_level() -> None:
    neurogram = ng.Neurogram(RATE)
    steady = _tones()
    assert ng.neurogram_losses(neurogram, steady, steady)[0].item() == pytest.approx(0, abs=1e-4)
    louder = ng.neurogram_losses(neurogram, steady, _tones(gain=1.4))[0].item()  # +3 dB
    fluttering = ng.neurogram_losses(neurogram, _tones(flutter=0.3, seed=1),
                                     _tones(flutter=0.3, seed=2))[0].item()
    assert louder < 0.01 < fluttering
    # Gradients stay finite, silence against silence included.
    decoded = torch.zeros(1, 1, 8000, requires_grad=True)
    loss = ng.neurogram_losses(neurogram, torch.zeros(1, 1, 8000), decoded)[0]
    loss.backward()
    assert loss.item() == pytest.approx(0, abs=1e-4) and torch.isfinite(decoded.grad).all()


def test_level_term_scores_the_envelope_depth_that_nsim_forgives() -> None:
    neurogram = ng.Neurogram(RATE)
    steady = _tones()
    assert ng.neurogram_losses(neurogram, steady, steady)[1].item() == pytest.approx(0, abs=1e-4)
    assert ng.neurogram_losses(neurogram, steady, _tones(gain=1.4))[1].item() \
        == pytest.approx(0, abs=1e-3)  # level-matched, as the texture term
    unrelated = ng.neurogram_losses(neurogram, _tones(flutter=0.3, seed=1),
                                    _tones(flutter=0.3, seed=2))
    # The same modulations (seed), three times as deep: NSIM barely minds, the level does.
    deeper = ng.neurogram_losses(neurogram, _tones(flutter=0.2, seed=1),
                                 _tones(flutter=0.6, seed=1))
    assert deeper[0] < unrelated[0] / 2 and deeper[1] > unrelated[1] > 0.1
    decoded = torch.zeros(1, 1, 8000, requires_grad=True)
    ng.neurogram_losses(neurogram, torch.zeros(1, 1, 8000), decoded)[1].backward()
    assert torch.isfinite(decoded.grad).all()


@pytest.mark.parametrize("key", ["loss.neurogram", "loss.band_levels"])
def test_neurogram_weights_are_configuration_keys_that_check_the_crop(key: str) -> None:
    config = get_train_preset("cpu").override({key: "20"})
    assert getattr(config.loss, key.split(".")[1]) == 20
    with pytest.raises(ValueError, match="80 ms"):
        get_train_preset("cpu").override({key: "20", "segment": "3200"})
