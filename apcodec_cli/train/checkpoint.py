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
from ..models import weights
from ..format.atomic import atomic_path
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
    return weights.check_format(payload, path, "training state", FORMAT, VERSION, StateError)


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


def deepens(a: CodecConfig, b: CodecConfig) -> bool:
    """Whether codec `b` is codec `a` with more ConvNeXt blocks in every stack (and
    otherwise the same shapes): a warm start from `a` then adds identity blocks."""
    return a.n_blocks < b.n_blocks and same_shapes(a.replace(n_blocks=b.n_blocks), b)


def initialise(codec: APCodec, path: str | os.PathLike) -> bytes:
    """Load a weights file into a weight-normed training codec (a warm start).

    The run's codec may be deeper than the file's (more blocks per stack, see `deepens`):
    each stack keeps the file's blocks first, and its new blocks start as identities (their
    last point-wise layer is zero), so the deeper codec starts out computing exactly what
    the file's did and learns from there.

    Returns:
        The fingerprint of the weights file.
    """
    loaded = weights.load(path)
    old, new = loaded.model.config, codec.config
    if not (same_shapes(old, new) or deepens(old, new)):
        raise StateError(f"{path} holds a {old.name!r} codec whose configuration differs "
                         f"from the run's {new.name!r}")
    state = apply_weight_norm(loaded.model).state_dict()
    missing, unexpected = codec.load_state_dict(state, strict=False)
    added = {name.rsplit(".", 2)[0] for name in missing}
    if unexpected or any(not _is_new_block(name, old.n_blocks) for name in added):
        raise StateError(f"{path}: weights do not fit the run's codec "
                         f"({len(missing)} missing, {len(unexpected)} unexpected)")
    with torch.no_grad():
        for name, module in codec.named_modules():
            if name in added:
                module.pwconv2.weight.zero_()
                module.pwconv2.bias.zero_()
    return loaded.fingerprint


def _is_new_block(name: str, kept: int) -> bool:
    """Whether `name` (a module path) is a ConvNeXt block past the first `kept` of a stack."""
    parent, _, index = name.rpartition(".")
    return parent.endswith("stack.blocks") and index.isdigit() and int(index) >= kept


def export(path: str | os.PathLike, generator: APCodec, **info: Any) -> bytes:
    """Write the generator (weight norm folded, half precision) as a weights file.

    The training generator is left untouched: a fresh copy is built from its state.

    Returns:
        The fingerprint of the written weights.
    """
    model = apply_weight_norm(APCodec(generator.config))
    model.load_state_dict(generator.state_dict())
    return weights.save(path, remove_weight_norm(model).eval(), trained=True, **info)
