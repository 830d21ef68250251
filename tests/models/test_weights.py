"""Weights files: safe loading, fingerprints, discovery, devices."""

from __future__ import annotations

import pickle

import pytest
import torch

from apcodec_cli.models import releases, weights
from apcodec_cli.nn.config import get_preset
from apcodec_cli.nn.model import APCodec

from helpers import make_weights


def test_save_load_round_trip_in_half_precision(tmp_path) -> None:
    model = APCodec(get_preset("tiny"))
    fp = weights.save(tmp_path / "w.pt", model, trained=True, steps=123)
    loaded = weights.load(tmp_path / "w.pt")
    assert loaded.fingerprint == fp and loaded.trained and loaded.info["steps"] == 123
    assert loaded.model.config == model.config and not loaded.model.training
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[name], tensor.half().float())


def test_fingerprint_changes_with_any_weight(tmp_path) -> None:
    a = weights.load(make_weights(tmp_path / "a.pt", seed=0)).fingerprint
    assert a == weights.load(make_weights(tmp_path / "b.pt", seed=0)).fingerprint
    assert a != weights.load(make_weights(tmp_path / "c.pt", seed=1)).fingerprint


class _Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def test_foreign_and_damaged_files_are_refused_without_running_code(tmp_path, capsys) -> None:
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(_Evil()))
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"\0" * 100)
    for name, message in [("evil.pt", "never loaded"), ("other.pt", "not an apcodec"),
                          ("junk.pt", "not a PyTorch file"), ("missing.pt", "not found")]:
        with pytest.raises(weights.WeightsError, match=message):
            weights.load(tmp_path / name)
    assert "code ran" not in capsys.readouterr().out


class _Foreign:
    """Any class: torch.load(weights_only=True) refuses to rebuild it."""


def test_unreadable_weights_are_one_clear_line_without_unsafe_advice(tmp_path) -> None:
    """Issue 11.10: torch's own messages advise weights_only=False (which would run the
    file's code) or were cut off at their first line break ('cannot read ... empty.pt:')."""
    (tmp_path / "random.pt").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "pickled.pt").write_bytes(b"\x80" + bytes(range(1, 200)))  # looks like a pickle
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save({"config": _Foreign()}, tmp_path / "foreign.pt")
    torch.save({"format": "x"}, tmp_path / "cut.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "cut.pt").read_bytes()[:200])
    for name, expected in [("random.pt", "not a PyTorch file"), ("pickled.pt", "damaged"),
                           ("empty.pt", "is empty"), ("foreign.pt", "never loaded"),
                           ("cut.pt", "damaged")]:
        with pytest.raises(weights.WeightsError) as caught:
            weights.load(tmp_path / name)
        message = str(caught.value)
        assert expected in message and str(tmp_path / name) in message, message
        assert "\n" not in message and not message.endswith(":")
        assert "weights_only" not in message and "trust" not in message


def test_config_that_does_not_match_the_state_is_refused(tmp_path) -> None:
    weights.save(tmp_path / "w.pt", APCodec(get_preset("tiny")), trained=False)
    payload = torch.load(tmp_path / "w.pt", weights_only=True)
    payload["config"]["dim"] = 24
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(weights.WeightsError, match="invalid weights"):
        weights.load(tmp_path / "bad.pt")


def test_default_path_prefers_the_environment_and_says_where_it_looked(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(weights.ENV_VAR, str(tmp_path / "mine.pt"))
    assert weights.default_path() == tmp_path / "mine.pt"
    monkeypatch.delenv(weights.ENV_VAR)
    monkeypatch.delenv(weights.STREAM_ENV_VAR, raising=False)
    monkeypatch.delenv(releases.PATH_ENV, raising=False)
    monkeypatch.setattr(releases, "installed_folders", lambda: [tmp_path / "none"])
    with pytest.raises(weights.WeightsError, match="no weights are installed.*none"):
        weights.default_path()
    with pytest.raises(weights.WeightsError, match="APCODEC_STREAM_WEIGHTS"):
        weights.default_path(streamable=True)
    monkeypatch.setenv(weights.STREAM_ENV_VAR, str(tmp_path / "s.pt"))
    assert weights.default_path(streamable=True) == tmp_path / "s.pt"


def test_missing_or_extra_tensors_are_refused(tmp_path) -> None:
    """The model is built without initialisation, so every tensor must come from the file."""
    weights.save(tmp_path / "w.pt", APCodec(get_preset("tiny")), trained=False)
    payload = torch.load(tmp_path / "w.pt", weights_only=True)
    name = sorted(payload["state_dict"])[0]
    missing = {**payload, "state_dict": {k: v for k, v in payload["state_dict"].items()
                                         if k != name}}
    extra = {**payload, "state_dict": {**payload["state_dict"], "spare": torch.zeros(1)}}
    for bad in (missing, extra):
        torch.save(bad, tmp_path / "bad.pt")
        with pytest.raises(weights.WeightsError, match="invalid weights"):
            weights.load(tmp_path / "bad.pt")


def test_loading_builds_the_stored_model_exactly(tmp_path) -> None:
    model = APCodec(get_preset("tiny"))
    weights.save(tmp_path / "w.pt", model, trained=False, half=False)
    loaded = weights.load(tmp_path / "w.pt").model
    state = loaded.state_dict()
    assert state.keys() == model.state_dict().keys()
    for name, tensor in model.state_dict().items():
        assert torch.equal(state[name], tensor), name


def _payload(path):
    return torch.load(path, weights_only=True)


def test_flipped_bytes_in_a_tensor_are_found_by_the_stored_fingerprint(tmp_path) -> None:
    payload = _payload(make_weights(tmp_path / "w.pt"))
    name = sorted(payload["state_dict"])[3]
    raw = payload["state_dict"][name].view(torch.uint8)
    raw.view(-1)[0] ^= 0x40  # as a flipped bit in the file's tensor data would
    torch.save(payload, tmp_path / "flipped.pt")
    with pytest.raises(weights.WeightsError, match="flipped.pt is damaged: its tensors' "
                                                   "fingerprint is"):
        weights.load(tmp_path / "flipped.pt")


def test_nan_weights_are_refused_naming_the_tensor(tmp_path) -> None:
    payload = _payload(make_weights(tmp_path / "w.pt"))
    name = sorted(n for n, t in payload["state_dict"].items() if t.is_floating_point())[0]
    payload["state_dict"][name].view(-1)[0] = float("nan")
    del payload["fingerprint"]  # a file saved before fingerprints were stored
    torch.save(payload, tmp_path / "nan.pt")
    with pytest.raises(weights.WeightsError, match=f"tensor {name} holds NaN or infinity"):
        weights.load(tmp_path / "nan.pt")


def test_a_shape_error_is_one_whole_sentence(tmp_path) -> None:
    payload = _payload(make_weights(tmp_path / "w.pt"))
    name = next(n for n, t in payload["state_dict"].items() if t.ndim == 2)
    payload["state_dict"][name] = payload["state_dict"][name][:, :1].clone()
    del payload["fingerprint"]
    torch.save(payload, tmp_path / "shape.pt")
    with pytest.raises(weights.WeightsError) as error:
        weights.load(tmp_path / "shape.pt")
    assert f"size mismatch for {name}: copying a param with shape" in str(error.value)
    assert "\n" not in str(error.value) and not str(error.value).endswith(":")


def test_flipped_bytes_in_a_release_without_a_stored_fingerprint_are_found_by_its_name(
        tmp_path) -> None:
    """Release 1's network files were saved before fingerprints were stored with the
    tensors: the fingerprint in their name is checked instead."""
    payload = _payload(make_weights(tmp_path / "w.pt"))
    del payload["fingerprint"]
    named = tmp_path / f"apcodec-r1-{weights.fingerprint(payload['state_dict']).hex()}.pt"
    torch.save(payload, named)
    assert weights.load(named).fingerprint  # intact: loads
    name = sorted(payload["state_dict"])[3]
    payload["state_dict"][name].view(torch.uint8).view(-1)[0] ^= 0x40
    torch.save(payload, named)
    with pytest.raises(weights.WeightsError, match="is damaged: its tensors' fingerprint"):
        weights.load(named)
