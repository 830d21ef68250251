"""scripts/spectral_texture.py: the texture figures of known spectra, CPU, fast."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[2] / "scripts" / "spectral_texture.py"
_SPEC = importlib.util.spec_from_file_location("spectral_texture", _PATH)
texture_script = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(texture_script)


def test_texture_of_a_rough_truth_and_its_smooth_mean() -> None:
    rng = np.random.default_rng(0)
    true = -20 + 3 * rng.standard_normal((64, 200))  # fluctuating around -20 dB
    true[40:] = -150  # silent bins, out of range: never counted
    smooth = np.full_like(true, -18.0)  # the mean, 2 dB high, no texture at all
    t = texture_script.texture(true, smooth, range_db=60)
    # |difference of two N(0, 9)| averages 3·sqrt(2)·sqrt(2/pi) = 3.39 dB
    assert t["true_frame"] == pytest.approx(3.39, abs=0.1)
    assert t["true_bin"] == pytest.approx(3.39, abs=0.1)
    assert t["decoded_frame"] == 0 and t["decoded_bin"] == 0
    assert t["bias"] == pytest.approx(2.0, abs=0.1)
    assert "output_frame" not in t
    same = texture_script.texture(true, true, range_db=60, output_db=smooth)
    assert same["decoded_frame"] == same["true_frame"] and same["bias"] == 0
    assert same["output_frame"] == 0 and same["output_bin"] == 0
