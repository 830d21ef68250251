"""The package's layers import one way (docs/architecture.md): nn < engine < io < codec < cli.

Read from the source with `ast`, imports inside functions included, so that a lazy import
cannot cross a layer unseen. `train/` is imported by nothing but itself and the CLI's
registration of `apcodec train`; the file format and audio modules import no torch.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import write_audio

PACKAGE = Path(__file__).resolve().parent.parent / "apcodec_cli"
#: Each layer may import itself and those before it; "base" (the package root's
#: `__init__`, `errors.py`, `units.py`) is below them all.
ORDER = ["base", "nn", "engine", "io", "codec", "cli"]
APPS = {"data", "train", "evaluate", "bench"}  # built on the layers, beside the CLI


def _layer(parts: list[str]) -> str:
    """Layer of a module named by its parts below `apcodec_cli` (['io', 'bitstream']);
    anything else at the root (`errors`, `units`, `__version__`) is the base."""
    return parts[0] if parts and parts[0] in {*ORDER, *APPS} else "base"


def _imports(path: Path) -> list[tuple[int, list[str]]]:
    """(line, parts below apcodec_cli) of every in-package module that `path` imports."""
    here = list(path.relative_to(PACKAGE).with_suffix("").parts)
    package = here[:-1]  # of a module and of a package's __init__ alike
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[1:]) for a in node.names
                      if a.name.split(".")[0] == "apcodec_cli"]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if (node.module or "").split(".")[0] != "apcodec_cli":
                    continue
                base = node.module.split(".")[1:]
            else:
                base = package[:len(package) - (node.level - 1)] + (
                    node.module.split(".") if node.module else [])
            if base:
                found.append((node.lineno, base))
            else:  # `from .. import x`: x is a subpackage, a module or a root attribute
                found += [(node.lineno, [a.name]) for a in node.names]
    return found


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_one_way(path: Path) -> None:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    own = "cli" if parts == ["__main__"] else _layer(parts)  # `python -m apcodec_cli`
    for line, target in _imports(path):
        layer = _layer(target)
        where = f"{path.relative_to(PACKAGE)}:{line} imports apcodec_cli.{'.'.join(target)}"
        if layer == "train":
            # The CLI registers `apcodec train` (its click definition only).
            assert own in ("train", "cli"), where
        if own in ORDER:
            if layer in APPS:  # only the CLI's registration of its subcommands
                assert own == "cli" and target[1:] == ["cli"], where
            else:
                assert ORDER.index(layer) <= ORDER.index(own), where


def test_file_format_and_audio_import_no_torch() -> None:
    script = ("import sys, apcodec_cli.io.bitstream, apcodec_cli.io.audio\n"
              "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_encoding_imports_no_training_code(tmp_path: Path, tiny_weights: Path) -> None:
    write_audio(tmp_path / "in.wav", 0.2)
    script = (
        "import sys\n"
        "sys.argv = ['apcodec', 'encode', '-q', '-w', sys.argv[1], sys.argv[2], sys.argv[3]]\n"
        "from apcodec_cli.cli.main import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print(sorted(m for m in sys.modules if m.startswith(('apcodec_cli.train', "
        "'apcodec_cli.evaluate', 'apcodec_cli.bench', 'apcodec_cli.data'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(tiny_weights),
                          str(tmp_path / "in.wav"), str(tmp_path / "x.apc")],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert (tmp_path / "x.apc").stat().st_size > 0
