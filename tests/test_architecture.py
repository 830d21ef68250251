"""docs/architecture.md covers the package: its tree of modules names every module there is,
and only those."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "apcodec_cli"


def _tree() -> list[str]:
    """The module paths of the tree under "## The modules": names at two spaces per level
    (descriptions start further right), folders ending in '/'."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("## The modules", 1)[1].split("```", 2)[1]
    folders: list[str] = []
    paths = []
    for line in block.splitlines():
        match = re.match(r"( *)(\S+)", line)
        if not match or len(match.group(1)) >= 20 or match.group(1) == "":
            continue  # the root line, a blank line, or a description's continuation
        depth = len(match.group(1)) // 2 - 1
        name = match.group(2)
        folders = folders[:depth]
        if name.endswith("/"):
            folders.append(name.rstrip("/"))
        else:
            paths.append("/".join([*folders, name]))
    return paths


def test_the_tree_names_every_module() -> None:
    modules = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                     if p.name != "__init__.py" or p.parent == PACKAGE)
    assert sorted(_tree()) == modules
