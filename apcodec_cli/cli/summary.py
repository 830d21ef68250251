"""The JSON-lines summary of a batch (`--summary FILE`), and what the summaries of its tasks
say together (`apcodec batch-status`).

Each line is one JSON object with the same keys:

    input, output   the paths as the task saw them ("-": stdin/stdout)
    name            the output's path relative to the output folder (what shards are cut
                    by): the same on every machine, whatever the folders are mounted as
    status          "planned" (the task will convert it), then one of "done", "skipped"
                    (the output was there already) or "failed"
    seconds         time spent converting it (null unless done or failed)
    bytes           size of the output file (null when there is none)
    error           why it failed, one line (null otherwise)
    command, shard, host, time    "encode" or "decode", "K/N" or null, the machine, and
                    the Unix time of the line

A task appends its lines as things happen, one `write` per line: "planned" for each of its
files before it starts, then each outcome as the file ends. A task killed at any moment
(a scheduler's time limit, a lost node) so leaves a valid prefix that names what it
finished, and its "planned" files without an outcome show what it did not; a summary
written whole at the end (atomically) would say nothing of a killed task. A rerun appends
to the same file, or writes another: the latest outcome of each output counts.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..errors import ApcodecError
from .batch import Outcome
from .plan import Job

FINISHED = ("done", "skipped")
STATUSES = ("planned", "failed", *FINISHED)


class SummaryError(ApcodecError):
    """A summary cannot be written or read."""


class SummaryLog:
    """Appends one task's lines to a summary file (created with its folder if missing)."""

    def __init__(self, path: str, command: str, output: str, shard: tuple[int, int] | None
                 ) -> None:
        self.command, self.output = command, output
        self.shard = f"{shard[0]}/{shard[1]}" if shard else None
        self.host = socket.gethostname()
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._end_line(path)
        except OSError as exc:
            raise SummaryError(f"cannot write the summary {path}: {exc.strerror}") from None

    def _end_line(self, path: str) -> None:
        """If a killed writer left half a line, end it, so that lines never run together."""
        size = os.fstat(self._fd).st_size
        if size:
            with open(path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    os.write(self._fd, b"\n")

    def planned(self, jobs: Iterable[Job]) -> None:
        for job in jobs:
            self._write(job, "planned")

    def outcome(self, outcome: Outcome) -> None:
        job = outcome.job
        ran = outcome.status in ("done", "failed")
        size = None
        if outcome.status in FINISHED and job.target != "-":
            try:
                size = os.path.getsize(job.target)
            except OSError:  # moved away meanwhile
                pass
        self._write(job, outcome.status, seconds=round(outcome.seconds, 3) if ran else None,
                    bytes=size, error=outcome.error)

    def _write(self, job: Job, status: str, **fields: Any) -> None:
        record = {"input": job.source, "output": job.target, "name": self._name(job.target),
                  "status": status, "seconds": None, "bytes": None, "error": None, **fields,
                  "command": self.command, "shard": self.shard, "host": self.host,
                  "time": round(time.time(), 3)}
        try:
            os.write(self._fd, (json.dumps(record) + "\n").encode("utf-8"))
        except OSError as exc:  # a full disk: the batch stops, as it cannot say how it went
            raise SummaryError(f"cannot write the summary: {exc.strerror}") from None

    def _name(self, target: str) -> str:
        if target == self.output:  # a single file: its name
            return Path(target).name
        try:
            return Path(target).relative_to(self.output).as_posix()
        except ValueError:
            return Path(target).name

    def close(self) -> None:
        os.close(self._fd)


def summary_files(paths: Iterable[str]) -> list[Path]:
    """The files named, and the *.jsonl files of the folders named."""
    found: list[Path] = []
    for path in map(Path, paths):
        found += sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not found:
        raise SummaryError(f"no *.jsonl summary in {', '.join(map(str, paths))}")
    return found


def read_records(paths: Iterable[Path]) -> tuple[list[dict[str, Any]], int]:
    """Every record of the summaries, oldest first, and how many damaged lines were left
    out (half a line left by a killed task: it counts as no line)."""
    records, damaged = [], 0
    for path in paths:
        lines = _lines(path)
        good = [r for r in map(_record, lines) if r is not None]
        if lines and not good:
            raise SummaryError(f"{path} is not an apcodec summary (no record in it)")
        damaged += len(lines) - len(good)
        records += good
    # Stable: records of one time keep their order (a task writes in the order of events).
    return sorted(records, key=lambda r: r["time"]), damaged


def _lines(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [line for line in f if line.strip()]
    except OSError as exc:
        raise SummaryError(f"cannot read {path}: {exc.strerror}") from None


def _record(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    keys = ("name", "status", "time", "input", "output")
    if not isinstance(record, dict) or any(k not in record for k in keys) \
            or not isinstance(record["time"], (int, float)) or record["status"] not in STATUSES:
        return None
    return record


#: What a line of each status replaces: "planned" only what has no outcome yet, "skipped"
#: (the output was there) all but "done" (which says more: how long, how big).
_REPLACES = {"planned": {None, "planned"}, "skipped": {None, "planned", "failed", "skipped"}}


def latest(records: Iterable[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each output's latest outcome ("done", "skipped", "failed"; a "skipped" after a "done"
    leaves the "done"), or its latest "planned" line when it has none."""
    last: dict[str, dict[str, Any]] = {}
    for record in records:  # oldest first
        name, status = record["name"], record["status"]
        if status not in _REPLACES or last.get(name, {}).get("status") in _REPLACES[status]:
            last[name] = record
    yield from sorted(last.items())


@contextlib.contextmanager
def recording(path: str | None, command: str, output: str, shard: tuple[int, int] | None,
              jobs: Sequence[Job]) -> Iterator[Callable[[Outcome], None]]:
    """Write a task's summary to `path` (None: none): its planned `jobs` now, then each
    outcome given to the function this yields."""
    if path is None:
        yield lambda outcome: None
        return
    log = SummaryLog(path, command, output, shard)
    try:
        log.planned(jobs)
        yield log.outcome
    finally:
        log.close()
