"""Time and peak memory of one child process (no torch here: the bench's parent stays light).

A process's peak RSS on Linux includes what it held before `exec`, i.e. a copy of the
process that forked it; the bench holds torch (hundreds of MB), so children are started by a
minimal launcher (`python -I -S`, about 10 MB) that forks, execs the command, and reports the
child's own `ru_maxrss` and wall time from `wait4`. Figures below the launcher's size (a few
MB, e.g. opusenc) therefore read as about 10 MB.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
from typing import Mapping, Sequence

from ..errors import ApcodecError

_MARK = "APCODEC-BENCH-CHILD"
_LAUNCHER = f"""
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
sys.stderr.write("\\n{_MARK} %d %d %.6f\\n" % (os.waitstatus_to_exitcode(status),
                                               usage.ru_maxrss, seconds))
"""


@dataclasses.dataclass(frozen=True)
class ProcessRun:
    """A finished child process: wall-clock seconds, peak resident memory in MB, output."""

    seconds: float
    peak_mb: float
    stdout: str


class ProcessFailed(ApcodecError):
    """A measured command exited with a non-zero status."""


def run_process(command: Sequence[str], env: Mapping[str, str] | None = None) -> ProcessRun:
    """Run `command` to completion; measure its wall time and its own peak RSS (whole
    process: interpreter, imports, model and buffers)."""
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty child never blocks
        proc = subprocess.run([sys.executable, "-I", "-S", "-c", _LAUNCHER, *command],
                              stdout=subprocess.PIPE, stderr=err,
                              env=None if env is None else dict(env))
        err.seek(0)
        lines = err.read().decode(errors="replace").splitlines()
    marks = [line.split() for line in lines if line.startswith(_MARK)]
    if proc.returncode != 0 or not marks or marks[-1][1] != "0":
        detail = [line for line in lines if line.strip() and not line.startswith(_MARK)]
        status = marks[-1][1] if marks else proc.returncode
        raise ProcessFailed(f"{' '.join(command[:4])} ... exited with {status}: "
                            f"{detail[-1] if detail else 'no message'}")
    _, _, maxrss_kb, seconds = marks[-1]
    return ProcessRun(float(seconds), int(maxrss_kb) / 1024.0,
                      proc.stdout.decode(errors="replace"))


def thread_env(threads: int | None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child limited to `threads` compute threads (None: unchanged)."""
    env = dict(os.environ if base is None else base)
    if threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
    return env
