"""The run's JSON-lines log and the running means of the losses between log records.

Each line of `log.jsonl` is one JSON object with an "event": "start" (the full configuration
and environment of an invocation), "train" (mean losses since the previous record, learning
rate, steps per second), "validation" (scores) or "stop" (why the invocation ended).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from ..format.atomic import atomic_path
from .trainer import StepResult

LOG_NAME = "log.jsonl"


class RunLog:
    """Appends JSON records to `<run_dir>/log.jsonl`, flushed line by line."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOG_NAME

    def truncate_after(self, step: int) -> None:
        """Drop records of steps after `step` (written before a crash, redone on resume)."""
        if not self.path.exists():
            return
        with open(self.path) as f:
            keep = [line for line in f if line.strip() and json.loads(line).get("step", 0) <= step]
        with atomic_path(self.path) as tmp:
            tmp.write_text("".join(keep))

    def write(self, event: str, step: int, **fields: Any) -> None:
        record = {"event": event, "step": step, "time": round(time.time(), 3), **fields}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


class LossMeter:
    """Sums the step losses on the device; reads them (one host sync) only when asked."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the sums and restart the clock."""
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.started = time.monotonic()

    def add(self, result: StepResult) -> None:
        terms = dict(result.generator.items())
        terms["discriminator"] = result.discriminator
        for name, value in terms.items():
            value = value.detach().float()
            self.sums[name] = self.sums[name] + value if name in self.sums else value
        self.count += 1

    def read(self) -> dict[str, float]:
        """Mean of every term and the step rate since the last read; then reset."""
        names = list(self.sums)
        values = torch.stack([self.sums[n] for n in names]).cpu().tolist() if names else []
        seconds = time.monotonic() - self.started
        means = {f"loss_{n}": round(v / max(1, self.count), 6) for n, v in zip(names, values)}
        means["steps_per_s"] = round(self.count / seconds, 4) if seconds > 0 else 0.0
        self.reset()
        return means
