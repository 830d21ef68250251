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
