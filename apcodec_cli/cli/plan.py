"""Which jobs a command line makes: inputs paired with outputs, folders mirrored, shards.

No torch and no model here: a `Job` is a pair of paths. `plan_jobs` pairs a command's
inputs with outputs the way `cp` does; `scan` lists a folder's files and says what it
leaves out; a share of a batch (`--shard`) is cut by output name (see `shard.py`).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Sequence

import soundfile as sf

from ..errors import ApcodecError
from .shard import in_shard

#: Extensions taken as audio when encoding a folder (what libsndfile reads, plus aliases).
AUDIO_EXTENSIONS = frozenset(
    {f".{ext.lower()}" for ext in sf.available_formats()} | {".opus", ".oga", ".aif", ".wave"}
)
APC_EXTENSION = ".apc"


@dataclasses.dataclass(frozen=True)
class Job:
    """One conversion: `source` to `target` ('-' is stdin/stdout)."""

    source: str
    target: str


class PlanError(ApcodecError):
    """The command line names inputs and outputs that cannot be paired."""


@dataclasses.dataclass(frozen=True)
class Skipped:
    """An entry of an input folder that is not converted, and why (see `describe_skipped`)."""

    path: str
    reason: str  # "dangling symlink", "symlinked folder", "not a regular file", "format"


@dataclasses.dataclass
class Plan:
    """The jobs of a command line, and what its folders hold that they leave out."""

    jobs: list[Job]
    skipped: list[Skipped] = dataclasses.field(default_factory=list)


def scan(root: Path, extensions: frozenset[str]) -> tuple[list[Path], list[Skipped]]:
    """The files under `root` with `extensions`, sorted, and the entries left out.

    Symlinked files are followed; symlinked folders are not (they could loop, or mirror
    a tree twice); hidden files are ignored silently.
    """
    found, skipped = [], []
    for folder, dirs, files in os.walk(root):  # lists symlinked folders without entering
        base = Path(folder)
        skipped += [Skipped(str(base / d), "symlinked folder") for d in sorted(dirs)
                    if (base / d).is_symlink()]
        for name in files:
            path = base / name
            if name.startswith("."):
                continue
            if not path.exists():
                skipped.append(Skipped(str(path), "dangling symlink"))
            elif not path.is_file():
                skipped.append(Skipped(str(path), "not a regular file"))
            elif path.suffix.lower() not in extensions:
                skipped.append(Skipped(str(path), "format"))
            else:
                found.append(path)
    return sorted(found), skipped


def describe_skipped(skipped: Sequence[Skipped], shown: int = 5) -> list[str]:
    """One line per reason: how many entries a folder scan left out, and which."""
    lines = []
    kinds = {"dangling symlink": "dangling symlinks", "symlinked folder":
             "symlinked folders (not followed)", "not a regular file": "special files"}
    for reason, label in kinds.items():
        paths = [s.path for s in skipped if s.reason == reason]
        if paths:
            more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
            lines.append(f"skipped {len(paths)} {label}: {', '.join(paths[:shown])}{more}")
    by_ext: dict[str, int] = {}
    for s in skipped:
        if s.reason == "format":
            ext = Path(s.path).suffix.lower() or "(no extension)"
            by_ext[ext] = by_ext.get(ext, 0) + 1
    if by_ext:
        counts = ", ".join(f"{ext} ({n})" for ext, n in sorted(by_ext.items()))
        lines.append(f"skipped {sum(by_ext.values())} files of formats not converted here: "
                     f"{counts}")
    return lines


def plan_jobs(sources: Sequence[str], output: str, extensions: frozenset[str], new_suffix: str,
              shard: tuple[int, int] | None = None) -> Plan:
    """Pair inputs with outputs the way `cp` does.

    One file and a path that is not a folder (and does not end in '/'): that path.
    Otherwise `output` is a folder (created later if missing): a file goes to
    `output/<name><new_suffix>`, and a folder is mirrored recursively (`a/b.wav` becomes
    `output/a/b.apc`) over files with `extensions`.
    """
    out = Path(output)
    missing = [s for s in sources if s != "-" and not Path(s).exists()]
    if missing:
        raise PlanError(f"no such file or folder: {missing[0]}")
    folder_named = output.endswith(("/", os.sep)) or out.is_dir()
    if len(sources) == 1 and not Path(sources[0]).is_dir() and not folder_named:
        return Plan([Job(sources[0], output)])
    if output == "-" or "-" in sources:
        raise PlanError("'-' (stdin/stdout) works with a single input and a single output")
    if out.exists() and not out.is_dir():
        raise PlanError(f"{output} is not a folder, but several inputs or a folder were given")
    plan = mirror(sources, out, extensions, new_suffix)
    if shard is not None:
        plan.jobs = [j for j in plan.jobs
                     if in_shard(Path(j.target).relative_to(out).as_posix(), shard)]
    return plan


def mirror(sources: Sequence[str], out: Path, extensions: frozenset[str], new_suffix: str
           ) -> Plan:
    """The jobs that write `sources` into the folder `out`: a file to `out/<name><new_suffix>`,
    a folder's files with `extensions` to the same paths under `out`."""
    plan = Plan([])
    for source in map(Path, sources):
        if source.is_dir():
            files, skipped = scan(source, extensions)
            plan.skipped += skipped
            plan.jobs += [Job(str(p), str(out / p.relative_to(source).with_suffix(new_suffix)))
                          for p in files]
        else:
            plan.jobs.append(Job(str(source), str(out / source.with_suffix(new_suffix).name)))
    return plan
