"""Helpers shared by the tests (imported by name: `from helpers import write_audio`).

Fixtures live in the `conftest.py` files; plain functions live here, because every
`conftest.py` of a folder without `__init__.py` is the module "conftest" and the last one
loaded wins: `from conftest import ...` breaks as soon as a sub-folder has its own.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import click
import numpy as np
import soundfile as sf
import torch
from click.testing import CliRunner, Result
from hypothesis import strategies as st

from apcodec_cli.models import weights
from apcodec_cli.nn.config import get_preset
from apcodec_cli.nn.model import APCodec


def script(name: str) -> ModuleType:
    """The maintainer tool `scripts/<name>.py`, imported as a module (its `main`, ...)."""
    path = Path(__file__).resolve().parent.parent / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_weights(path: Path, seed: int = 0, grn: bool = True, preset: str = "tiny") -> Path:
    """Write untrained tiny weights; with `grn`, give GRN non-zero weights as training does
    (at initialisation GRN is the identity, which would hide its whole-signal statistics)."""
    torch.manual_seed(seed)
    model = APCodec(get_preset(preset))
    if grn:
        for name, param in model.named_parameters():
            if ".grn." in name:
                param.data.normal_(0.0, 0.5)
    weights.save(path, model, trained=False)
    return path


def tone(seconds: float, rate: int = 48_000, channels: int = 1, seed: int = 0) -> np.ndarray:
    """(channels, samples) test signal: a chord plus a little noise, peak about 0.5."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    out = []
    for c in range(channels):
        x = sum(0.15 * np.sin(2 * np.pi * f * (c + 1) * t) for f in (220.0, 330.0, 440.0))
        out.append(x + 0.02 * rng.standard_normal(t.size))
    return np.asarray(out, dtype=np.float32)


def write_audio(path: Path, seconds: float, rate: int = 48_000, channels: int = 1,
                subtype: str = "PCM_16") -> np.ndarray:
    audio = tone(seconds, rate, channels)
    sf.write(path, audio.T, rate, subtype=subtype)
    return audio


def partials(folder: Path) -> list[Path]:
    """The temporary files (`format/atomic.py`) anywhere under `folder`."""
    return [p for p in folder.rglob("*") if p.name.endswith(".partial")]


def disk_fills_while_writing(monkeypatch, name: str) -> None:
    """Make `Path.write_text` of files called `name` (or their temporary files) write half
    the text, then fail as a full disk does."""
    import errno

    write_text = Path.write_text

    def half_then_full(self: Path, text: str, *args, **kwargs) -> int:
        if self.name == name or self.name.startswith(f".{name}."):
            write_text(self, text[: len(text) // 2], *args, **kwargs)
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return write_text(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", half_then_full)


def invoke(command: click.Command, *args: object, input: bytes | None = None,
           catch_exceptions: bool = True) -> Result:
    """Run a click command in this process, as its console script would: `args` may be
    paths; stdout and stderr are kept apart. The `cli` fixture is `invoke(main, ...)`."""
    return CliRunner().invoke(command, [str(a) for a in args], input=input,
                              catch_exceptions=catch_exceptions)


# ---- damaged files -----------------------------------------------------------------------

def chunk_offset(data: bytes, index: int) -> int:
    """Byte offset of chunk `index` in the `.apc` file `data` (any version)."""
    import io

    from apcodec_cli.format.bitstream import ApcReader

    return ApcReader(io.BytesIO(data)).chunk_offset(index)


def flip(data: bytes, pos: int, mask: int = 0xFF) -> bytes:
    """`data` with the bits of `mask` flipped in byte `pos`."""
    return data[:pos] + bytes([data[pos] ^ mask]) + data[pos + 1:]


Edit = tuple[str, int, int]


def edits(size: int) -> st.SearchStrategy[list[Edit]]:
    """One to four edits (kind, position, value) of a file of `size` bytes, for `damage`."""
    return st.lists(st.tuples(st.sampled_from(["flip", "set", "cut", "insert", "delete"]),
                              st.integers(0, size), st.integers(0, 255)),
                    min_size=1, max_size=4)


def damage(data: bytes, changes: list[Edit]) -> bytes:
    """`data` with the `changes`: a bit flipped, a byte set, the end cut, a byte inserted,
    or up to 20 bytes deleted."""
    out = bytearray(data)
    for kind, pos, value in changes:
        pos = min(pos, len(out))
        if kind == "flip" and pos < len(out):
            out[pos] ^= 1 << (value % 8)
        elif kind == "set" and pos < len(out):
            out[pos] = value
        elif kind == "cut":
            del out[pos:]
        elif kind == "insert":
            out[pos:pos] = bytes([value])
        elif kind == "delete":
            del out[pos:pos + 1 + value % 20]
    return bytes(out)


# ---- subprocesses ------------------------------------------------------------------------

def command_shims(folder: Path) -> dict[str, str]:
    """The environment of a subprocess whose `apcodec` and `torchrun` commands are this
    interpreter's (the code under test, not whatever else PATH holds): shims in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, module in (("apcodec", "apcodec_cli"), ("torchrun", "torch.distributed.run")):
        shim = folder / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m {module} "$@"\n')
        shim.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"}
