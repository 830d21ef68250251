"""Runtime policy (runtime.py): the device and the precision a model runs in."""

from __future__ import annotations

import pytest
import torch

from apcodec_cli import runtime


def test_device_resolution() -> None:
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert runtime.resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(runtime.DeviceError, match="no CUDA device"):
            runtime.resolve_device("cuda")


def test_precision_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert runtime.resolve_precision("bf16", cpu) and not runtime.resolve_precision("fp32", cpu)
    for native in (True, False):  # auto: bf16 only on a CPU with bf16 instructions
        monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
        assert runtime.resolve_precision("auto", cpu) == native
        assert not runtime.resolve_precision("auto", cuda)
    monkeypatch.setenv(runtime.PRECISION_ENV, "bf16")
    assert runtime.resolve_precision(None, cpu)
    monkeypatch.setenv(runtime.PRECISION_ENV, "half")
    with pytest.raises(runtime.PrecisionError, match="precision must be one of"):
        runtime.resolve_precision(None, cpu)
