"""The package's layers import one way (docs/architecture.md):
base < format < nn < models < engine < codec < cli, and the apps beside the CLI.

Read from the source with `ast`, imports inside functions included, so that a lazy import
cannot cross a layer unseen. The apps (data, evaluate, train, bench) may use every layer
but never `cli/`, and import one another without a cycle; `train/` is imported by nothing
but itself and the CLI's registration of `apcodec train`. The base and the file format
import no torch, checked by importing each of their modules with torch made unimportable.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import write_audio

PACKAGE = Path(__file__).resolve().parent.parent / "apcodec_cli"
#: Each layer may import itself and those before it.
ORDER = ["base", "format", "nn", "models", "engine", "codec", "cli"]
APPS = {"data", "train", "evaluate", "bench"}  # built on the layers, beside the CLI
#: Modules at the package's root that are not the base: the codec layer's two.
ROOT = {"codec": "codec", "live": "codec", "__main__": "cli"}


def _layer(parts: list[str]) -> str:
    """Layer (or app) of a module named by its parts below `apcodec_cli` (['format',
    'bitstream']); the root's modules are the base (`errors`, `units`, `runtime`, ...,
    `__version__`) but for those of `ROOT`."""
    if not parts:
        return "base"
    if parts[0] in {*ORDER, *APPS}:
        return parts[0]
    return ROOT.get(parts[0], "base")


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
    own = _layer(list(path.relative_to(PACKAGE).with_suffix("").parts))
    for line, target in _imports(path):
        layer = _layer(target)
        where = f"{path.relative_to(PACKAGE)}:{line} imports apcodec_cli.{'.'.join(target)}"
        if layer == "train":
            # The CLI registers `apcodec train` (its click definition only).
            assert own in ("train", "cli"), where
        if own in APPS:
            assert layer != "cli", where  # an app never needs the `apcodec` command's code
        elif layer in APPS:  # only the CLI's registration of the apps' subcommands
            assert own == "cli" and target[1:] == ["cli"], where
        else:
            assert ORDER.index(layer) <= ORDER.index(own), where


def test_apps_import_one_another_without_a_cycle() -> None:
    uses: dict[str, set[str]] = {app: set() for app in APPS}
    for path in _modules():
        own = _layer(list(path.relative_to(PACKAGE).with_suffix("").parts))
        if own in APPS:
            uses[own] |= {_layer(t) for _, t in _imports(path)} & (APPS - {own})
    done: list[str] = []
    while len(done) < len(APPS):  # peel off the apps whose every import is done
        ready = [app for app in sorted(APPS - set(done)) if uses[app] <= set(done)]
        assert ready, f"apps import one another in a cycle: { {a: uses[a] for a in APPS} }"
        done += ready
    assert done.index("data") < done.index("evaluate") < done.index("train")


#: Importing torch fails under this finder: whatever needs it at import shows at once.
_NO_TORCH = """
import importlib, importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"{name} is blocked: this module must not import torch")
sys.meta_path.insert(0, NoTorch())
importlib.import_module(sys.argv[1])
"""


def _torch_free_modules() -> list[str]:
    """Every module of `format/` and of the base, by dotted name."""
    names = []
    for path in _modules():
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if _layer(parts) in ("base", "format"):
            names.append(".".join(["apcodec_cli", *[p for p in parts if p != "__init__"]]))
    return names


def test_base_and_format_are_checked_whole() -> None:
    names = _torch_free_modules()
    assert {"apcodec_cli.format", "apcodec_cli.format.bitstream", "apcodec_cli.format.live",
            "apcodec_cli.format.audio", "apcodec_cli.runtime"} <= set(names)
    assert len([n for n in names if n.startswith("apcodec_cli.format.")]) == len(
        list((PACKAGE / "format").glob("*.py"))) - 1  # all but __init__, counted as the folder


@pytest.mark.parametrize("name", _torch_free_modules())
def test_base_and_format_import_no_torch(name: str) -> None:
    out = subprocess.run([sys.executable, "-c", _NO_TORCH, name], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr.strip().splitlines()[-1]


def test_encoding_imports_no_training_code_nor_the_extras(tmp_path: Path, tiny_weights: Path) -> None:
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
        "'apcodec_cli.evaluate', 'apcodec_cli.bench', 'apcodec_cli.data', 'visqol', "
        "'pesq', 'pystoi'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(tiny_weights),
                          str(tmp_path / "in.wav"), str(tmp_path / "x.apc")],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert (tmp_path / "x.apc").stat().st_size > 0
