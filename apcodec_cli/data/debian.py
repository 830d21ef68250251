"""Install the corpus's Debian packages (training and held out) and turn their audio into
sources."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections import defaultdict
from typing import Sequence

from .corpus import (ARCHIVE_SEP, DEBIAN_PACKAGES, HELDOUT_PACKAGES, Package, Source,
                     is_audio_name)


def _apt(args: Sequence[str]) -> bool:
    """Run apt-get (through sudo when not root), its output on stderr; True on success."""
    cmd = ["apt-get", *args]
    if os.geteuid() != 0 and shutil.which("sudo"):
        cmd = ["sudo", *cmd]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(cmd, env=env, stdout=sys.stderr, stderr=sys.stderr).returncode == 0


def is_installed(name: str) -> bool:
    """Whether a Debian package is installed."""
    result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name],
                            capture_output=True, text=True)
    # "install ok installed"; a known but absent package says "unknown ok not-installed"
    return result.returncode == 0 and result.stdout.split()[-1:] == ["installed"]


def install_packages(names: Sequence[str]) -> list[str]:
    """Install packages with apt-get; returns the ones that could not be installed.

    All packages are tried in one transaction first; on failure the package lists are updated
    and each package is tried alone, so one package missing from the mirror skips only itself.
    """
    todo = [n for n in names if not is_installed(n)]
    install = ["install", "-y", "--no-install-recommends"]
    if not todo or _apt([*install, *todo]):
        return []
    _apt(["update"])
    return [n for n in todo if not _apt([*install, n])]


def package_files(name: str) -> list[str]:
    """Regular files (not symbolic links) installed by a package, from ``dpkg -L``."""
    out = subprocess.run(["dpkg", "-L", name], capture_output=True, text=True, check=True).stdout
    return [f for f in out.splitlines() if os.path.isfile(f) and not os.path.islink(f)]


def debian_sources(name: str, spec: Package | None = None) -> list[Source]:
    """Sources of one installed package, following its quirks (zip archive, stems, filters).

    Keys are "package/path" with the path relative to the common folder of the package's
    audio (or the member name inside its archive).
    """
    spec = spec or DEBIAN_PACKAGES.get(name) or HELDOUT_PACKAGES[name]
    pattern = re.compile(spec.include) if spec.include else None

    def keep(path: str) -> bool:
        return is_audio_name(path) and (pattern is None or bool(pattern.search(path)))

    if spec.archive:
        with zipfile.ZipFile(spec.archive) as zf:
            members = sorted(m for m in zf.namelist() if not m.endswith("/") and keep(m))
        return [Source(f"{name}/{m}", (f"{spec.archive}{ARCHIVE_SEP}{m}",), name, spec.category)
                for m in members]
    files = sorted(f for f in package_files(name) if keep(f))
    if not files:
        return []
    root = os.path.commonpath([os.path.dirname(f) for f in files])
    if not spec.stems:
        return [Source(f"{name}/{os.path.relpath(f, root)}", (f,), name, spec.category)
                for f in files]
    folders: dict[str, list[str]] = defaultdict(list)
    for f in files:
        if os.path.basename(f) in spec.stems:
            folders[os.path.dirname(f)].append(f)
    order = {stem: i for i, stem in enumerate(spec.stems)}
    return [Source(f"{name}/{os.path.relpath(d, root) if d != root else os.path.basename(d)}",
                   tuple(sorted(fs, key=lambda f: order[os.path.basename(f)])), name, spec.category)
            for d, fs in sorted(folders.items())]
