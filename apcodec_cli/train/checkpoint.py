"""Training state on disk (resumable runs) and export of the trained codec as a weights file.

`state.pt` is a `torch.save` of plain containers and tensors, readable with
`weights_only=True`:

    {"format": "apcodec-train-state", "version": 1, "step": int,
     "config": TrainConfig.to_dict(), "generator": state dict (weight-normed),
     "discriminators": ..., "opt_g": ..., "opt_d": ..., "sched_g": ..., "sched_d": ...,
     "rng": {"cpu": ByteTensor, "cuda": [ByteTensor, ...]}}
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from ..errors import ApcodecError
from ..io import weights
from ..io.atomic import atomic_path
from ..nn.config import CodecConfig
from ..nn.model import APCodec

FORMAT = "apcodec-train-state"
VERSION = 1
STATE_NAME = "state.pt"


class StateError(ApcodecError):
    """A training state file that is missing or not one of ours."""


def apply_weight_norm(model: APCodec) -> APCodec:
    """Reparametrise the codec's weight-normed layers in place, as training wants them."""
    for layer in model.weight_norm_layers():
        weight_norm(layer)
    return model


def remove_weight_norm(model: APCodec) -> APCodec:
    """Fold the weight norm back into plain weights in place (the inference layout)."""
    for layer in model.weight_norm_layers():
        parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
    return model


def save_state(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write a training state atomically (a crash never leaves a half-written file)."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, **payload}, tmp)


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training state safely onto the CPU."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise StateError(f"no training state to resume: {path}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise StateError(f"{path} is not an apcodec training state")
    if payload.get("version") != VERSION:
        raise StateError(f"{path}: training state version {payload.get('version')!r} "
                         f"is not supported (expected {VERSION})")
    return payload


def rng_state() -> dict[str, Any]:
    """The global torch RNG states (CPU and every CUDA device)."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned, the CUDA states of the devices this machine has:
    a run saved on eight GPUs resumes on one (or on none). Nothing else is lost: the
    batches depend only on (seed, rank, step), see crops.py."""
    torch.set_rng_state(state["cpu"])
    if torch.cuda.is_available():
        for index, cuda in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda, index)


def same_shapes(a: CodecConfig, b: CodecConfig) -> bool:
    """Whether weights of codec `a` fit codec `b`: equal but for the name and causality
    (a streamable model starts from its non-causal twin, see train/distill.py)."""
    return a.replace(name=b.name, causal=b.causal, grn_window=b.grn_window) == b


def initialise(codec: APCodec, path: str | os.PathLike) -> bytes:
    """Load a weights file into a weight-normed training codec (a warm start).

    Returns:
        The fingerprint of the weights file.
    """
    loaded = weights.load(path)
    if not same_shapes(loaded.model.config, codec.config):
        raise StateError(f"{path} holds a {loaded.model.config.name!r} codec whose "
                         f"configuration differs from the run's {codec.config.name!r}")
    codec.load_state_dict(apply_weight_norm(loaded.model).state_dict())
    return loaded.fingerprint


def export(path: str | os.PathLike, generator: APCodec, **info: Any) -> bytes:
    """Write the generator (weight norm folded, half precision) as a weights file.

    The training generator is left untouched: a fresh copy is built from its state.

    Returns:
        The fingerprint of the written weights.
    """
    model = apply_weight_norm(APCodec(generator.config))
    model.load_state_dict(generator.state_dict())
    return weights.save(path, remove_weight_norm(model).eval(), trained=True, **info)
