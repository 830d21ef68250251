"""What this machine offers a job: CPU cores and available memory, and the error for a job
that needs more. Imports nothing of the package but errors.py (and no torch): every layer
may use it.
"""

from __future__ import annotations

import os

from .errors import ApcodecError


class MachineLimitError(ApcodecError):
    """A job needs more than this machine has (memory, say), however its input was made."""


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity where the system says)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def available_memory() -> int | None:
    """Bytes of memory available to new work (Linux: MemAvailable), None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_memory(need: int, what: str) -> None:
    """Raise MachineLimitError when `need` bytes exceed 80 % of the available memory."""
    available = available_memory()
    if available is not None and need > 0.8 * available:
        raise MachineLimitError(f"{what} need about {need / 1e9:.1f} GB of memory; this "
                                f"machine has {available / 1e9:.1f} GB available")
