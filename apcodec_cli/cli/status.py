"""`apcodec batch-status`: the summaries of a batch's tasks, merged into one answer.

Which files failed, which did a stopped task leave unfinished, which did no task plan at
all (with `--inputs`: a task that never ran), and so: is the batch complete, and which
shares to run again. Running a share again is all it takes, as finished outputs are
skipped.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

from .plan import APC_EXTENSION, AUDIO_EXTENSIONS, mirror, scan
from .shard import shard_of
from .summary import FINISHED, SummaryError, latest, read_records, summary_files


@dataclasses.dataclass
class BatchStatus:
    """The latest line of each output, and the outputs no summary names."""

    last: dict[str, dict[str, Any]]  # by output name
    missing: list[str]
    damaged: int = 0  # lines left out: half lines of killed tasks

    def having(self, *statuses: str) -> list[dict[str, Any]]:
        return [r for r in self.last.values() if r["status"] in statuses]

    @property
    def complete(self) -> bool:
        return not self.missing and all(r["status"] in FINISHED for r in self.last.values())

    def shards_to_rerun(self) -> list[str]:
        """The shares ("K/N", or "all" for an unsharded run) that hold unfinished work."""
        shards = {r["shard"] or "all" for r in self.having("failed", "planned")}
        counts = {int(r["shard"].split("/")[1]) for r in self.last.values() if r["shard"]}
        if self.missing and len(counts) == 1:  # the one layout of the tasks that ran
            n = counts.pop()
            shards |= {f"{shard_of(name, n)}/{n}" for name in self.missing}
        elif self.missing:
            shards.add("all")
        return sorted(shards, key=lambda s: [int(x) for x in s.split("/")[::-1]]
                      if s != "all" else [1 << 62])


def batch_status(paths: Sequence[str], inputs: Sequence[str] = ()) -> BatchStatus:
    """Merge summary files (and folders of them); with `inputs`, the inputs of the batch,
    whose every file must have a finished output."""
    records, damaged = read_records(summary_files(paths))
    last = dict(latest(records))
    missing: list[str] = []
    if inputs and not records:  # no task has written a line: every input is missing
        missing = _input_files(inputs)
    elif inputs:
        missing = sorted(expected_names(inputs, {r.get("command") for r in records}) - set(last))
    return BatchStatus(last, missing, damaged)


def _input_files(inputs: Sequence[str]) -> list[str]:
    """The files a conversion of `inputs` could take (no summary says which command)."""
    files: list[str] = []
    for source in map(Path, inputs):
        found = scan(source, AUDIO_EXTENSIONS | {APC_EXTENSION})[0] if source.is_dir() \
            else [source]
        files += [str(p) for p in found]
    return sorted(files)


def expected_names(inputs: Sequence[str], commands: set[Any]) -> set[str]:
    """The output names that a conversion of `inputs` writes (the command the summaries
    name decides which files it takes)."""
    if len(commands) != 1 or not commands <= {"encode", "decode"}:
        raise SummaryError("--inputs needs summaries of one command, encode or decode; "
                           f"these hold {sorted(map(str, commands)) or 'no record'}")
    encode = commands == {"encode"}
    plan = mirror(inputs, Path(), AUDIO_EXTENSIONS if encode else frozenset({APC_EXTENSION}),
                  APC_EXTENSION if encode else ".wav")
    return {Path(job.target).as_posix() for job in plan.jobs}


def report(status: BatchStatus) -> list[str]:
    """What `apcodec batch-status` prints: one line per problem, then the totals."""
    lines = [f"failed      {r['input']} -> {r['output']}: {r['error']} ({_where(r)})"
             for r in status.having("failed")]
    lines += [f"unfinished  {r['input']} -> {r['output']} ({_where(r)} planned it; its task "
              "stopped first)" for r in status.having("planned")]
    lines += [f"missing     {name} (no summary names it: did a task not run?)"
              for name in status.missing]
    counts = {s: len(status.having(s)) for s in ("done", "skipped", "failed", "planned")}
    total = len(status.last) + len(status.missing)
    verdict = "complete" if status.complete else "INCOMPLETE"
    lines.append(f"apcodec: {total} outputs: {counts['done']} converted, {counts['skipped']} "
                 f"already there, {counts['failed']} failed, {counts['planned']} unfinished, "
                 f"{len(status.missing)} missing: {verdict}")
    if status.damaged:
        lines.append(f"apcodec: {status.damaged} damaged lines left out (half lines of "
                     "killed tasks)")
    if not status.complete:
        lines.append(f"apcodec: run again: {_shards(status.shards_to_rerun())} (finished "
                     "outputs are skipped)")
    return lines


def as_json(status: BatchStatus) -> dict[str, Any]:
    """The same, as one JSON object."""
    return {"complete": status.complete,
            "counts": {s: len(status.having(s)) for s in ("done", "skipped", "failed")}
            | {"unfinished": len(status.having("planned")), "missing": len(status.missing)},
            "failed": status.having("failed"), "unfinished": status.having("planned"),
            "missing": status.missing, "damaged_lines": status.damaged,
            "rerun": [] if status.complete else status.shards_to_rerun()}


def _where(record: dict[str, Any]) -> str:
    shard = f"shard {record['shard']}" if record.get("shard") else "unsharded run"
    return f"{shard} on {record.get('host', '?')}"


def _shards(shards: list[str]) -> str:
    if "all" in shards:
        return "the whole batch (the command, or every task)"
    return ("the task of shard " if len(shards) == 1 else "the tasks of shards ") + \
        ", ".join(shards)
