"""Weights files: save, safe load, fingerprint, and where the default weights live.

A weights file is a `torch.save` of a plain dict (loaded with `weights_only=True`):

    {"format": "apcodec-weights", "version": 1,
     "config": {...CodecConfig fields...},
     "state_dict": {name: tensor, ...},          # stored in half precision or float32
     "info": {"trained": bool, "description": str, ...free-form str/int/float...},
     "code_tables": {"frequencies": int32 tensor, "buckets": int32 tensor,   # optional:
                     "n_buckets": int32 tensor, "info": {...}}}            # see entropy.py

The network fingerprint is the first 8 bytes of a SHA-256 over the stored tensors (names,
dtypes, shapes and bytes, in sorted name order). The weights fingerprint is the same, or,
when the file holds code tables, a SHA-256 of it and the tables' own fingerprint
(`entropy.CodeTables.weights_fingerprint`): it names the tables too. It is written into
every `.apc` file so a decoder can refuse codes made by other weights.

A released model (`releases.py`) keeps its network and its code tables in separate files:
a weights file without `code_tables`, and a code-tables file, a `torch.save` of

    {"format": "apcodec-code-tables", "version": 1,
     "network_fingerprint": "<16 hex digits>",       # the network they were fitted to
     "code_tables": {...as above...}}
"""

from __future__ import annotations

import hashlib
import os
import pickle
import warnings
from pathlib import Path
from typing import Any, Mapping

import torch
from torch.overrides import TorchFunctionMode

from ..errors import ApcodecError
from ..format.atomic import atomic_path
from ..format.entropy import CodeTables
from ..nn.config import CodecConfig
from ..nn.model import APCodec
from . import releases

FORMAT = "apcodec-weights"
VERSION = 1
TABLES_FORMAT = "apcodec-code-tables"
TABLES_VERSION = 1
#: Weights to use instead of the newest release (the streamable model's: STREAM_ENV_VAR).
ENV_VAR = "APCODEC_WEIGHTS"
STREAM_ENV_VAR = "APCODEC_STREAM_WEIGHTS"


class WeightsError(ApcodecError):
    """A weights file is missing, unreadable or not an apcodec weights file."""


def fingerprint(state_dict: Mapping[str, torch.Tensor]) -> bytes:
    """8-byte identity of a state dict (the network fingerprint), independent of the
    device it lives on."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.digest()[:8]


def save(path: str | os.PathLike, model: APCodec, *, trained: bool, half: bool = True,
         code_tables: CodeTables | None = None, tables_info: Mapping[str, Any] | None = None,
         **info: Any) -> bytes:
    """Write `model` (and its code tables, if given) as a weights file in one atomic
    write; returns its fingerprint.

    Args:
        path: Destination file.
        model: The codec to save (weight norm must already be removed).
        trained: Whether these weights come from training; untrained weights are
            flagged as such by every command that loads them.
        half: Store floating-point tensors in float16 (half the size).
        code_tables: Tables that range-code this network's codes (format versions 2 and 3).
        tables_info: Provenance of `code_tables` (str, int, float or bool values).
        **info: Extra metadata (str, int, float or bool values), e.g. steps or data.
    """
    dtype = torch.float16 if half else torch.float32
    state = {
        name: (t.detach().to("cpu", dtype) if t.is_floating_point() else t.detach().cpu())
        for name, t in model.state_dict().items()
    }
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": model.config.to_dict(),
        "state_dict": state,
        "fingerprint": fingerprint(state).hex(),  # checked on load: damage shows
        "info": {"trained": bool(trained), **info},
    }
    if code_tables is not None:
        payload["code_tables"] = _stored_tables(code_tables, tables_info or {})
    write_payload(path, payload)
    return weights_fingerprint(fingerprint(state), code_tables)


def weights_fingerprint(network: bytes, code_tables: CodeTables | None) -> bytes:
    """The weights fingerprint: the network's, or with code tables one naming them too."""
    return network if code_tables is None else code_tables.weights_fingerprint(network)


def _stored_tables(tables: CodeTables, info: Mapping[str, Any]) -> dict[str, Any]:
    """The `code_tables` entry of a weights file's payload."""
    return {**{k: torch.from_numpy(v) for k, v in tables.to_arrays().items()},
            "info": dict(info)}


class LoadedWeights:
    """A model loaded from a weights file, with its provenance.

    Attributes:
        model: The codec in eval mode, float32, on the requested device.
        fingerprint: 8-byte identity of the weights: the network and its code tables.
        network_fingerprint: 8-byte identity of the network alone (the same as
            `fingerprint` when the file holds no code tables).
        code_tables: The tables that range-code this network's codes (format versions 2 and 3),
            or None.
        tables_info: Provenance stored with the code tables ({} when there are none).
        info: The file's metadata; `info["trained"]` says whether they were trained.
        path: Where they were loaded from.
        tables_path: The code-tables file the tables came from (None: from `path`, or none).
    """

    def __init__(self, model: APCodec, network_fingerprint: bytes, info: dict[str, Any],
                 path: Path, code_tables: CodeTables | None = None,
                 tables_info: dict[str, Any] | None = None):
        self.model = model
        self.network_fingerprint = network_fingerprint
        self.code_tables = code_tables
        self.tables_info = dict(tables_info or {})
        self.fingerprint = weights_fingerprint(network_fingerprint, code_tables)
        self.info = info
        self.path = path
        self.tables_path: Path | None = None

    @property
    def trained(self) -> bool:
        return bool(self.info.get("trained", False))


def check_format(payload: Any, path: str | os.PathLike, kind: str, format: str, version: int,
                 error: type[ApcodecError] = WeightsError) -> dict[str, Any]:
    """`payload`, once it is known to be a dict of our `format` at `version`; else `error`
    naming the file as not an apcodec `kind` file, or its version as unsupported. Weights,
    code tables and training states all check this way."""
    if not isinstance(payload, dict) or payload.get("format") != format:
        raise error(f"{path} is not an apcodec {kind} file")
    if payload.get("version") != version:
        raise error(f"{path}: {kind} format version {payload.get('version')!r} "
                    f"is not supported (this apcodec reads version {version})")
    return payload


def _checked_payload(path: Path, kind: str, format: str, version: int) -> dict[str, Any]:
    """The payload dict of a file of `kind` ("weights", "code-tables"), safely (no pickle
    code execution), once its format and version are known to be ours."""
    return check_format(_read_payload(path), path, kind, format, version)


def read_payload(path: Path) -> dict[str, Any]:
    """The payload dict of a weights file, safely (no pickle code execution)."""
    return _checked_payload(path, "weights", FORMAT, VERSION)


def write_payload(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write a weights file's payload atomically (as read by `read_payload`)."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def payload_tables(payload: dict[str, Any], path: Path) -> CodeTables | None:
    stored = payload.get("code_tables")
    if stored is None:
        return None
    try:
        return CodeTables.from_arrays({k: v.numpy() for k, v in stored.items()
                                       if isinstance(v, torch.Tensor)})
    except (AttributeError, ValueError) as exc:
        raise WeightsError(f"{path}: invalid code tables: {exc}".splitlines()[0]) from None


def load(path: str | os.PathLike, device: str | torch.device = "cpu",
         tables: str | os.PathLike | None = None) -> LoadedWeights:
    """Load a weights file safely (no pickle code execution) onto `device`; with `tables`,
    the code tables of that code-tables file instead of any in the weights file.

    Raises:
        WeightsError: Unreadable or invalid files, or tables of another network.
    """
    path = Path(path)
    if tables is not None:
        loaded = load(path, device)
        code_tables, network, info = read_tables(tables)
        if network != loaded.network_fingerprint:
            raise WeightsError(f"{tables} holds the code tables of network {network.hex()}, "
                               f"not of {path} ({loaded.network_fingerprint.hex()})")
        loaded.code_tables, loaded.tables_info = code_tables, info
        loaded.tables_path = Path(tables)
        loaded.fingerprint = weights_fingerprint(loaded.network_fingerprint, code_tables)
        return loaded
    payload = read_payload(path)
    tables = payload_tables(payload, path)
    try:
        config = CodecConfig.from_dict(payload["config"])
        with _SkipInit():  # every tensor is replaced below: no random initialisation
            model = APCodec(config)
        state = payload["state_dict"]
        # strict (the default): a missing, extra or misshapen tensor is an error.
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in state.items()}, assign=True)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise WeightsError(f"{path}: invalid weights: {_one_line(exc)}") from None
    network = _checked_fingerprint(payload, state, path)
    model.eval().requires_grad_(False).to(device)
    tables_info = (payload.get("code_tables") or {}).get("info", {})
    return LoadedWeights(model, network, dict(payload.get("info", {})), path, tables,
                         tables_info)


def fingerprints(path: str | os.PathLike) -> tuple[bytes, bytes, bool]:
    """(network fingerprint, weights fingerprint, streamable) of a weights file, without
    building its model."""
    path = Path(path)
    payload = read_payload(path)
    try:
        network = fingerprint(payload["state_dict"])
        causal = bool(payload["config"].get("causal", False))
    except (KeyError, TypeError, AttributeError, RuntimeError) as exc:
        raise WeightsError(f"{path}: invalid weights: {exc}".splitlines()[0]) from None
    return network, weights_fingerprint(network, payload_tables(payload, path)), causal


def save_tables(path: str | os.PathLike, tables: CodeTables, network_fingerprint: bytes,
                info: Mapping[str, Any] | None = None) -> None:
    """Write a code-tables file (the tables of the network with that fingerprint), atomically."""
    write_payload(path, {"format": TABLES_FORMAT, "version": TABLES_VERSION,
                         "network_fingerprint": bytes(network_fingerprint).hex(),
                         "code_tables": _stored_tables(tables, info or {})})


def read_tables(path: str | os.PathLike) -> tuple[CodeTables, bytes, dict[str, Any]]:
    """(tables, the fingerprint of their network, their provenance) of a code-tables file."""
    path = Path(path)
    payload = _checked_payload(path, "code-tables", TABLES_FORMAT, TABLES_VERSION)
    tables = payload_tables(payload, path)
    try:
        network = bytes.fromhex(payload["network_fingerprint"])
    except (KeyError, TypeError, ValueError):
        network = b""
    if tables is None or len(network) != 8:
        raise WeightsError(f"{path}: invalid code-tables file")
    return tables, network, dict(payload["code_tables"].get("info", {}))


def _checked_fingerprint(payload: dict[str, Any], state: Mapping[str, torch.Tensor],
                         path: Path) -> bytes:
    """The network fingerprint of `state`, once its tensors are known to be finite and to
    match the fingerprint stored with them, or else the one a release's file name gives
    (files saved before it was stored, such as release 1, have none)."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise WeightsError(f"{path} is damaged: tensor {name} holds NaN or infinity")
    network = fingerprint(state)
    named = releases.named_network(path)
    stored = payload.get("fingerprint") or (named.hex() if named else None)
    if stored is not None and stored != network.hex():
        raise WeightsError(f"{path} is damaged: its tensors' fingerprint is {network.hex()}, "
                           f"the file says {stored!s:.16}")
    return network


def _one_line(exc: BaseException) -> str:
    """torch's multi-line load errors in one line: the first specific problem, and how
    many more ("Error(s) in loading state_dict for APCodec:" alone says nothing)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if len(lines) > 1 and lines[0].endswith(":"):
        more = len(lines) - 2
        return lines[1].rstrip(".") + (f" (and {more} more)" if more > 0 else "")
    return lines[0]


def store_code_tables(path: str | os.PathLike, tables: CodeTables,
                      out: str | os.PathLike | None = None, **info: Any) -> bytes:
    """Put `tables` into the weights file `path` (replacing any there), keeping everything
    else in it, and write the result atomically to `out` (default: `path` itself).

    Args:
        info: Provenance of the tables (str, int, float or bool values), e.g. the data.

    Returns:
        The new weights fingerprint.
    """
    path = Path(path)
    payload = read_payload(path)
    payload["code_tables"] = _stored_tables(tables, info)
    with atomic_path(Path(out) if out is not None else path) as tmp:
        torch.save(payload, tmp)
    return tables.weights_fingerprint(fingerprint(payload["state_dict"]))


#: How files written by `torch.save` start: a zip archive, or (before torch 1.6) a pickle.
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80")


def _read_payload(path: Path) -> Any:
    """The object in a `torch.save` file, loaded without running pickled code.

    Raises WeightsError in one line of our own: torch's messages run over several lines
    and advise `weights_only=False`, which would run whatever code the file holds.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except FileNotFoundError:
        raise WeightsError(f"weights file not found: {path}") from None
    except OSError as exc:
        raise WeightsError(f"cannot read weights file {path}: {exc.strerror}") from None
    if not head:
        raise WeightsError(f"{path} is empty: not an apcodec weights file")
    if not head.startswith(_TORCH_MAGIC):
        raise WeightsError(f"{path} is not an apcodec weights file (not a PyTorch file: "
                           "another format, or damaged)")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickles; we refuse them
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise WeightsError(f"{path} is not an apcodec weights file: damaged, or it holds "
                           "Python objects other than tensors and plain data (never loaded: "
                           "they could run code)") from None
    except Exception as exc:  # torch raises many types for a damaged file
        raise WeightsError(f"{path} is damaged or not an apcodec weights file "
                           f"({type(exc).__name__})") from None


class _SkipInit(TorchFunctionMode):
    """While active, the `torch.nn.init` functions leave their tensor as it is.

    For building a model whose every parameter a weights file then replaces: random
    initialisation took 70 % of building the model, and the results cannot depend on it
    (docs/speed.md, start-up). Unlike building on the 'meta' device, this imports nothing
    more (a meta `normal_` imports torch._dynamo, 1 s).
    """

    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if getattr(func, "__module__", None) == "torch.nn.init":
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


def default_path(streamable: bool = False) -> Path:
    """The default weights: $APCODEC_WEIGHTS (streamable: $APCODEC_STREAM_WEIGHTS) if
    set, else the newest installed release's network (`releases.newest`; `codec.Codec.load`
    adds its newest code tables).

    Raises WeightsError, saying where it looked, when no weights are installed.
    """
    env = STREAM_ENV_VAR if streamable else ENV_VAR
    if os.environ.get(env):
        # An explicit setting must not silently fall back to other weights.
        return Path(os.environ[env])
    try:
        return releases.newest(streamable).path
    except releases.NotInstalledError as exc:
        raise WeightsError(f"{exc} (or {env})") from None
