"""Manifest of a corpus: deterministic train/validation split, JSON-lines I/O, summaries.

The split is made per source from a hash of its key, so it depends on the key alone, never on
file order or on which other files are present.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Collection, Iterable, Mapping, Sequence

from ..io.atomic import atomic_path


def split_score(key: str) -> float:
    """Uniform number in [0, 1) from a hash of a source key."""
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") / 2.0**64


def assign_splits(packages: Mapping[str, str], val_fraction: float = 0.05,
                  min_group: int = 3, heldout: Collection[str] = ()) -> dict[str, str]:
    """Split sources into "train", "validation" and "heldout" deterministically.

    Every source of a package in ``heldout`` is "heldout" (never trained on: out-of-source
    validation). Of the others, a source goes to validation when ``split_score(key) <
    val_fraction``. A package with at least ``min_group`` sources but none in validation gets
    its lowest-scoring source moved there, so every category and package is validated.
    Nothing depends on order.

    Args:
        packages: Source key -> package name.
        val_fraction: Expected fraction of sources in validation.
        min_group: Smallest package that is guaranteed a validation source.
        heldout: Packages held out of training as a whole.
    """
    splits = {k: "validation" if split_score(k) < val_fraction else "train" for k in packages}
    groups: dict[str, list[str]] = defaultdict(list)
    for key, package in packages.items():
        if package in heldout:
            splits[key] = "heldout"
        else:
            groups[package].append(key)
    for keys in groups.values():
        if val_fraction > 0 and len(keys) >= min_group and all(splits[k] == "train" for k in keys):
            splits[min(keys, key=split_score)] = "validation"
    return splits


def write_manifest(out_dir: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]],
                   splits: Mapping[str, str]) -> Path:
    """Write ``manifest.jsonl`` (one segment a line, sorted by path, with its split)."""
    path = Path(out_dir) / "manifest.jsonl"
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        for row in sorted(rows, key=lambda r: r["path"]):
            f.write(json.dumps({**row, "split": splits[row["source"]]}, sort_keys=True) + "\n")
    return path


def read_manifest(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a ``manifest.jsonl`` back into a list of dicts."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def summarize(rows: Iterable[Mapping[str, Any]],
              by: Sequence[str] = ("category", "split")) -> dict[str, dict[str, float]]:
    """Hours and segment counts grouped by the given row fields ("music/train": {...})."""
    table: dict[str, dict[str, float]] = defaultdict(lambda: {"hours": 0.0, "segments": 0})
    for row in rows:
        cell = table["/".join(str(row[k]) for k in by)]
        cell["hours"] += row["duration"] / 3600
        cell["segments"] += 1
    return {k: {"hours": round(v["hours"], 3), "segments": v["segments"]}
            for k, v in sorted(table.items())}
