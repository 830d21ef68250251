"""Paired comparison of two `apcodec eval --json-out` files: the ship test of a candidate.

    python scripts/compare_runs.py shipped.json candidate.json
    python scripts/compare_runs.py run.json run.json --systems opus-12k-vbr apcodec

For every category, system and metric the two files share, it pairs the clips scored in both
and prints the mean of the candidate's scores, the mean difference (candidate minus
baseline) ± the standard error of that difference, and on how many clips the candidate was
better (higher for ViSQOL, PESQ and ESTOI; lower for LSD, the log-mel distance and the
artefacts, the hop and code lines and the quiet floor; nearer 0 dB for the level). Pairing
clip by clip removes the spread between clips, which is most of the spread of each file's
own means. The pooled line peaks (`artefacts.pooled_peaks`) are a figure of the set of
clips, not of each: their record compares the two files' figures on the clips both
scored, with the standard error of the difference from resampling those clips (paired,
2 000 draws), and counts no clips better. With `--systems BASE CAND` it pairs two systems
instead, BASE's rows of the first file against CAND's of the second (the same file twice:
apcodec against Opus in one run).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from . import artefacts
from .report import mean_se

#: Metric -> +1 where higher is better, -1 where lower is better, 0 where nearer 0 is.
METRICS = {"visqol": 1, "pesq": 1, "estoi": 1, "lsd": -1, "mel": -1, "level": 0,
           "hop_lines": -1, "hop_peaks": -1, "off_peaks": -1, "code_lines": -1, "quiet_floor": -1}


def by_clip(rows: Iterable[dict[str, Any]], system: str | None = None,
            label: str | None = None) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(category, system, clip) -> row of an eval's rows; with `system`, only that
    system's rows, keyed under `label` (default: the system's name). A clip is named by
    its path where the row gives one: two packages may both hold an `intro.ogg`."""
    return {(row["category"], label or row["system"], row.get("path", row["clip"])): row
            for row in rows if system is None or row["system"] == system}


def read_rows(path: Path, system: str | None = None, label: str | None = None
              ) -> dict[tuple[str, str, str], dict[str, Any]]:
    """`by_clip` of the rows of an eval JSON file."""
    return by_clip(json.loads(path.read_text())["rows"], system, label)


def compare(baseline: dict, candidate: dict) -> Iterable[dict[str, Any]]:
    """One record per (category, system, metric) with at least one clip scored in both."""
    groups = sorted({key[:2] for key in baseline} & {key[:2] for key in candidate})
    for category, system in groups:
        clips = sorted(key for key in candidate
                       if key[:2] == (category, system) and key in baseline)
        for metric, sense in METRICS.items():
            pairs = [(baseline[k][metric], candidate[k][metric]) for k in clips
                     if _number(baseline[k].get(metric)) and _number(candidate[k].get(metric))]
            if not pairs:
                continue
            diff = mean_se(c - b for b, c in pairs)
            n = diff.n
            better = sum((abs(c) < abs(b)) if sense == 0 else (sense * (c - b) > 0)
                         for b, c in pairs)
            yield {"category": category, "system": system, "metric": metric, "clips": n,
                   "baseline": sum(b for b, _ in pairs) / n,
                   "candidate": sum(c for _, c in pairs) / n,
                   "difference": diff.mean, "se": diff.se, "better": better}
        pooled = _pooled([baseline[k] for k in clips], [candidate[k] for k in clips])
        if pooled:
            yield {"category": category, "system": system, **pooled}


RESAMPLES = 2000  # draws of the clips for the pooled figure's standard error


def _pooled(baseline: list[dict[str, Any]], candidate: list[dict[str, Any]]
            ) -> dict[str, Any] | None:
    """The pooled-peaks record of paired rows (those with a `hop_peak_profile` in both),
    or None where fewer than two clips have one."""
    pairs = [(b["hop_peak_profile"], c["hop_peak_profile"]) for b, c in zip(baseline, candidate)
             if b.get("hop_peak_profile") and c.get("hop_peak_profile")]
    base, cand = (np.array([p[i] for p in pairs], np.float64).reshape(-1, artefacts.HOP_LINES)
                  for i in (0, 1))
    kept = np.isfinite(base).all(axis=1) & np.isfinite(cand).all(axis=1)
    base, cand = base[kept], cand[kept]
    if len(base) < 2:
        return None
    b, c = artefacts.pooled_peaks(base)[0], artefacts.pooled_peaks(cand)[0]
    draws = np.random.default_rng(0).integers(0, len(base), (RESAMPLES, len(base)))
    diffs = base[draws].mean(axis=1).max(axis=1), cand[draws].mean(axis=1).max(axis=1)
    return {"metric": "pooled_peaks", "clips": len(base), "baseline": b, "candidate": c,
            "difference": c - b, "se": float(np.std(diffs[1] - diffs[0], ddof=1)),
            "better": None}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
