"""One exception family (errors.py): every exception class of the package derives from
`ApcodecError`, and the command reports one that reaches it in one line, exit status 1."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

import apcodec_cli
from apcodec_cli.cli import main as cli_main
from apcodec_cli.errors import ApcodecError

PACKAGE = Path(apcodec_cli.__file__).parent
#: Not errors: a stop (Ctrl-C's kin) passes `except Exception` on purpose.
NOT_ERRORS = {"apcodec_cli.runtime.Interrupted"}


def _exception_classes() -> list[type]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        module = importlib.import_module(".".join(p for p in parts if p != "__init__"))
        found += [obj for _, obj in inspect.getmembers(module, inspect.isclass)
                  if issubclass(obj, BaseException) and obj.__module__ == module.__name__]
    return found


def test_every_exception_class_is_an_apcodec_error() -> None:
    classes = _exception_classes()
    assert len(classes) > 10
    strays = [f"{c.__module__}.{c.__qualname__}" for c in classes
              if not issubclass(c, ApcodecError)]
    assert set(strays) == NOT_ERRORS


def test_the_root_is_exported() -> None:
    assert apcodec_cli.ApcodecError is ApcodecError


def test_the_command_reports_the_root_in_one_line(monkeypatch, capsys) -> None:
    def broken(**kwargs: object) -> None:
        raise ApcodecError("something specific\nand more")

    monkeypatch.setattr(cli_main, "main", broken)
    with pytest.raises(SystemExit) as stop:
        cli_main.entry()
    assert stop.value.code == 1
    assert capsys.readouterr().err == "apcodec: error: something specific\n"


def test_user_facing_errors_are_apcodec_errors(codec, tmp_path) -> None:
    """A library user who catches ApcodecError catches each of these (they were bare
    ValueError / RuntimeError); they stay ValueError / RuntimeError for older callers."""
    import io

    import numpy as np

    from apcodec_cli.engine.shared import SharedPasses
    from apcodec_cli.format.audio import output_format
    from apcodec_cli.format.wavstream import WavStreamReader

    header = codec.file_header(1, 48_000, 6000, 6000)
    codes = np.zeros((1, 4, header.n_frames), np.int64)
    from apcodec_cli.format.bitstream import write_apc
    write_apc(str(tmp_path / "x.apc"), header, codes, levels=np.zeros((1, 1), np.int8))
    passes = SharedPasses(codec.model, 4)
    passes._stopped = True
    for call, base in [
        (lambda: WavStreamReader(io.BytesIO(b"not a wav stream at all")), ValueError),
        (lambda: output_format("out.xyz"), ValueError),
        (lambda: output_format("out.flac", float32=True), ValueError),
        (lambda: codec.decode_file(str(tmp_path / "x.apc"), io.BytesIO(), start=5.0),
         ValueError),
        (lambda: passes("decode", codes), RuntimeError),
    ]:
        with pytest.raises(ApcodecError) as caught:
            call()
        assert isinstance(caught.value, base) and "\n" not in str(caught.value)
