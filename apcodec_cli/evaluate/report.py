"""Aggregate per-clip rows (mean ± standard error) and format them as markdown tables."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable, Mapping, Sequence

from . import artefacts

#: Table columns: row key, header (the arrow says which way is better), decimals.
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("kbps", "kbit/s", 2),
    ("visqol", "ViSQOL ↑", 2),
    ("pesq", "PESQ-WB ↑", 2),
    ("estoi", "ESTOI ↑", 3),
    ("lsd", "LSD dB ↓", 2),
    ("mel", "log-mel ↓", 3),
    ("level", "level dB", 2),
    ("hop_lines", "hop lines dB ↓", 1),
    ("hop_peaks", "hop peaks dB ↓", 1),
    ("pooled_peaks", "pooled peaks dB ↓", 1),
    ("off_peaks", "off peaks dB ↓", 1),
    ("code_lines", "code lines dB ↓", 1),
    ("quiet_floor", "quiet floor dB ↓", 1),
    ("bandwidth_loss", "band lost kHz ↓", 1),
)

Summary = dict[str, dict[str, dict[str, "Stat"]]]  # category -> system -> metric -> Stat


@dataclasses.dataclass(frozen=True)
class Stat:
    """Mean and standard error of the mean over the `n` clips where a value was measured."""

    mean: float
    se: float
    n: int


def mean_se(values: Iterable[float | None]) -> Stat:
    """Mean and standard error (sample std / sqrt(n)) of the finite values; NaN when none."""
    kept = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(kept)
    if n == 0:
        return Stat(math.nan, math.nan, 0)
    mean = sum(kept) / n
    if n == 1:
        return Stat(mean, math.nan, 1)
    variance = sum((v - mean) ** 2 for v in kept) / (n - 1)
    return Stat(mean, math.sqrt(variance / n), n)


#: Columns that are a statistic of the whole set of clips, not a mean over them.
POOLED = frozenset({"pooled_peaks"})


def summarize(rows: Sequence[Mapping[str, Any]]) -> Summary:
    """Statistics of every column per category and system (systems in order of appearance)."""
    groups: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
    for row in rows:
        groups.setdefault(row["category"], {}).setdefault(row["system"], []).append(row)
    return {category: {system: {key: (_pooled(members) if key in POOLED else
                                      mean_se(r.get(key) for r in members))
                                for key, _, _ in COLUMNS}
                       for system, members in systems.items()}
            for category, systems in sorted(groups.items())}


def _pooled(members: Sequence[Mapping[str, Any]]) -> Stat:
    """`artefacts.pooled_peaks` of the clips whose rows hold a `hop_peak_profile` (rows
    written before it have none: no value)."""
    profiles = artefacts.measured_profiles(
        [r["hop_peak_profile"] for r in members if r.get("hop_peak_profile")])
    mean, se = artefacts.pooled_peaks(profiles)
    return Stat(mean, se, len(profiles) if math.isfinite(mean) else 0)


def format_stat(stat: Stat, decimals: int, clips: int) -> str:
    """'3.29 ± 0.05'; a lone value without ±; '–' for none; '(n=K)' when clips were missed."""
    if stat.n == 0:
        return "–"
    text = f"{stat.mean:.{decimals}f}"
    if stat.n > 1:
        text += f" ± {stat.se:.{decimals}f}"
    if stat.n < clips:
        text += f" (n={stat.n})"
    return text


def markdown_table(systems: Mapping[str, Mapping[str, Stat]]) -> str:
    """One table: a row per system, a column per measured metric (empty columns dropped)."""
    clips = max(stats["kbps"].n for stats in systems.values())
    columns = [c for c in COLUMNS if any(stats[c[0]].n for stats in systems.values())]
    lines = ["| system | " + " | ".join(header for _, header, _ in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for system, stats in systems.items():
        cells = [format_stat(stats[key], decimals, clips) for key, _, decimals in columns]
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(summary: Summary, preamble: str = "") -> str:
    """A heading and a table per category, after an optional preamble paragraph."""
    parts = [preamble] if preamble else []
    for category, systems in summary.items():
        clips = max(stats["kbps"].n for stats in systems.values())
        parts.append(f"### {category} ({clips} clip{'s' if clips != 1 else ''})\n\n"
                     + markdown_table(systems))
    return "\n\n".join(parts) + "\n"


def summary_json(summary: Summary) -> dict[str, Any]:
    """The summary as plain JSON values (NaN becomes null)."""
    def clean(x: float) -> float | None:
        return x if math.isfinite(x) else None

    return {category: {system: {key: {"mean": clean(s.mean), "se": clean(s.se), "n": s.n}
                                for key, s in stats.items()}
                       for system, stats in systems.items()}
            for category, systems in summary.items()}
