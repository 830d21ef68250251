"""Maintainer tools have one home, `scripts/`, and its README indexes every one of them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"


def _tables(title: str) -> list[str]:
    """The first column's names of the tables under the sections of scripts/README.md
    whose heading is (or is not, for `!Retired`) `title`."""
    text = (SCRIPTS / "README.md").read_text()
    names = []
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        heading = section.splitlines()[0].strip()
        if (heading == "Retired") == (title == "Retired"):
            names += re.findall(r"^\| `([^`]+)` \|", section, flags=re.M)
    return names


def test_the_index_names_every_tool_and_only_those() -> None:
    present = sorted(p.name for p in SCRIPTS.iterdir() if p.is_file() and p.name != "README.md")
    assert sorted(_tables("tools")) == present


def test_retired_probes_are_gone_and_cited_from_history() -> None:
    text = (SCRIPTS / "README.md").read_text()
    for name in _tables("Retired"):
        assert not (SCRIPTS / name).exists(), name
        assert f":scripts/{name}`" in text, name


def test_no_maintainer_tool_is_a_module_of_the_package() -> None:
    """A tool is run as `python scripts/NAME.py`; the package's `python -m` entries are the
    product's commands only (`apcodec`, and `torchrun -m apcodec_cli.train.cli`, `python -m
    apcodec_cli.bench.baseline`, which `apcodec bench` runs as a child process)."""
    runnable = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "apcodec_cli").rglob("*.py")
                      if 'if __name__ == "__main__":' in p.read_text())
    assert runnable == ["apcodec_cli/__main__.py", "apcodec_cli/bench/baseline.py",
                        "apcodec_cli/bench/cli.py", "apcodec_cli/evaluate/cli.py",
                        "apcodec_cli/train/cli.py"]
