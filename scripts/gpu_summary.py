"""The figures of a GPU slice (scripts/gpu_slice.sh) in one JSON object, on stdout.

    python scripts/gpu_summary.py RUNS_DIR [--started UNIX_TIME]

Reads what the slice left in RUNS_DIR: bench.json, folder.json, checks/checks.json, the
pytest report gpu-tests.xml (each test's outcome and recorded figures) and each training
run's log.jsonl (last record of loss, steps, step rate; how it stopped). Missing parts are
reported as missing, so a slice that broke off still says what it measured.
"""

from __future__ import annotations

import argparse
import json
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return f"missing ({type(exc).__name__})"


def bench(path: Path) -> Any:
    report = _json(path)
    if not isinstance(report, dict):
        return report
    return [{k: row[k] for k in ("system", "threads", "seconds", "encode_x_real_time",
                                 "decode_x_real_time", "encode_peak_mb", "decode_peak_mb")}
            for row in report["rows"]]


def tests(path: Path) -> Any:
    """{test: outcome or {outcome, figures...}} of a junit report (xunit1 properties)."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError) as exc:
        return f"missing ({type(exc).__name__})"
    out: dict[str, Any] = {}
    for case in root.iter("testcase"):
        outcome = next((tag for tag in ("failure", "error", "skipped")
                        if case.find(tag) is not None), "passed")
        figures = {p.get("name"): p.get("value") for p in case.iter("property")}
        out[case.get("name")] = {"outcome": outcome, **figures} if figures else outcome
    return out


def training(run_dir: Path) -> Any:
    """The last train record and the stop record of a run's log."""
    try:
        records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    except (OSError, ValueError) as exc:
        return f"missing ({type(exc).__name__})"
    start = next((r for r in records if r["event"] == "start"), {})
    last = next((r for r in reversed(records) if r["event"] == "train"), {})
    stop = next((r for r in reversed(records) if r["event"] == "stop"), {})
    return {"bf16": start.get("env", {}).get("bf16"), "step": stop.get("step"),
            "reason": stop.get("reason"), "fingerprint": stop.get("fingerprint"),
            **{k: last[k] for k in ("steps_per_s", "loss_total") if k in last}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("--started", type=float, help="when the slice began (Unix time)")
    args = parser.parse_args()
    runs = args.runs
    summary = {
        "minutes": round((time.time() - args.started) / 60, 2) if args.started else None,
        "bench": bench(runs / "bench.json"),
        "folder": _json(runs / "folder.json"),
        "checks": _json(runs / "checks" / "checks.json"),
        "tests": tests(runs / "gpu-tests.xml"),
        "training": {d.name: training(d) for d in sorted(runs.iterdir()) if d.is_dir()
                     and (d / "log.jsonl").exists()},
    }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
