"""Shares of a batch for clusters: `--shard K/N`, or `--shard auto` from the scheduler.

A batch is cut by output name (`in_shard`), so every machine that runs shard K of N
converts the same files, whatever order it lists them in. `--shard auto` reads K and N
from the environment that the scheduler gives each task:

- Slurm job arrays (`sbatch --array=A-B[:S]`): `SLURM_ARRAY_TASK_ID`, the array's lowest
  index `SLURM_ARRAY_TASK_MIN` and step `SLURM_ARRAY_TASK_STEP` (1 if absent), and its size
  `SLURM_ARRAY_TASK_COUNT`, or, when that is absent, `SLURM_ARRAY_TASK_MAX`. Task
  MIN + i*STEP is shard i+1, so arrays may start at any index (0-7, 1-8, 100-107:2).
  Arrays of irregular lists (`--array=1,2,5`) have no such numbering and are refused.
- Kubernetes Indexed Jobs: `JOB_COMPLETION_INDEX` (0 .. completions-1) is shard index+1;
  the Job says its size in `APCODEC_SHARD_COUNT`, set in the manifest to `completions`
  (Kubernetes does not give it to the pod).

Elsewhere (GNU parallel, xargs, plain loops) the task gives `--shard K/N` itself.
"""

from __future__ import annotations

import os
import re
import zlib
from typing import Mapping

from ..errors import ApcodecError

SLURM_ID = "SLURM_ARRAY_TASK_ID"
KUBERNETES_INDEX = "JOB_COMPLETION_INDEX"
COUNT_ENV = "APCODEC_SHARD_COUNT"  # the size of a Kubernetes Indexed Job


class ShardError(ApcodecError):
    """A --shard value, or the scheduler's variables behind `--shard auto`, make no share."""


def parse_shard(text: str, environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """'K/N' -> (K, N) with 1 <= K <= N; 'auto' -> the scheduler's (see the module)."""
    if text.strip().lower() == "auto":
        return from_environment(os.environ if environ is None else environ)
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ShardError(f"--shard takes K/N (e.g. 2/8) or auto, not {text!r}") from None
    if not 1 <= k <= n:
        raise ShardError(f"--shard K/N needs 1 <= K <= N, got {text!r}")
    return k, n


def in_shard(relative: str, shard: tuple[int, int]) -> bool:
    """Whether an output belongs to shard K of N: a stable hash of its path relative to the
    output folder.

    The same output lands in the same shard on every machine, whatever else the tree holds;
    inputs that would write the same output (`a.wav` and `a.flac` to `a.apc`) land in the
    same shard, so their collision is found there as in an unsharded run.
    """
    k, n = shard
    return shard_of(relative, n) == k


def shard_of(relative: str, n: int) -> int:
    """The shard (1 .. n) of an output, by its path relative to the output folder."""
    return zlib.crc32(relative.encode("utf-8")) % n + 1


def from_environment(environ: Mapping[str, str]) -> tuple[int, int]:
    """(K, N) of this task from a Slurm array's or a Kubernetes Indexed Job's variables."""
    slurm, kubernetes = SLURM_ID in environ, KUBERNETES_INDEX in environ
    if slurm and kubernetes:
        raise ShardError(f"--shard auto found both {SLURM_ID} and {KUBERNETES_INDEX}: "
                         "unset the one that does not belong here, or give --shard K/N")
    if slurm:
        return _slurm(environ)
    if kubernetes:
        return _kubernetes(environ)
    raise ShardError(f"--shard auto found no scheduler: it reads a Slurm job array's "
                     f"{SLURM_ID} or a Kubernetes Indexed Job's {KUBERNETES_INDEX} (with "
                     f"{COUNT_ENV}); elsewhere give --shard K/N")


def _number(environ: Mapping[str, str], name: str, default: int | None = None) -> int:
    """A variable that must hold a whole number >= 0 (or be absent, given a default)."""
    text = environ.get(name)
    if text is None:
        if default is None:
            raise ShardError(f"--shard auto: {name} is not set")
        return default
    if not re.fullmatch(r"\s*\d+\s*", text):
        raise ShardError(f"--shard auto: {name}={text!r} is not a whole number >= 0")
    return int(text)


def _slurm(environ: Mapping[str, str]) -> tuple[int, int]:
    """Slurm: task MIN + i*STEP of the array is shard i+1 of its COUNT (or of the tasks
    from MIN to MAX)."""
    task, first = _number(environ, SLURM_ID), _number(environ, "SLURM_ARRAY_TASK_MIN")
    step = _number(environ, "SLURM_ARRAY_TASK_STEP", 1)
    if "SLURM_ARRAY_TASK_COUNT" in environ:
        count = _number(environ, "SLURM_ARRAY_TASK_COUNT")
    else:
        last = _number(environ, "SLURM_ARRAY_TASK_MAX")
        count = (last - first) // step + 1 if step and last >= first else 0
    last = _number(environ, "SLURM_ARRAY_TASK_MAX", first + step * (count - 1))
    regular = step > 0 and count > 0 and last == first + step * (count - 1)
    if not regular or (task - first) % step or not first <= task <= last:
        raise ShardError(
            f"--shard auto: Slurm array task {task} of MIN {first}, MAX {last}, STEP {step}, "
            f"COUNT {count} is not in an evenly spaced range: submit --array=A-B or A-B:S, "
            "or give --shard K/N")
    return (task - first) // step + 1, count


def _kubernetes(environ: Mapping[str, str]) -> tuple[int, int]:
    """Kubernetes: completion index i of an Indexed Job is shard i+1 of APCODEC_SHARD_COUNT."""
    index = _number(environ, KUBERNETES_INDEX)
    if COUNT_ENV not in environ:
        raise ShardError(f"--shard auto: {KUBERNETES_INDEX} is set but {COUNT_ENV} is not: "
                         f"set it in the Job's manifest to its `completions`")
    count = _number(environ, COUNT_ENV)
    if not index < count:
        raise ShardError(f"--shard auto: {KUBERNETES_INDEX}={index} needs {COUNT_ENV} > "
                         f"{index}, got {count}: set it to the Job's `completions`")
    return index + 1, count
