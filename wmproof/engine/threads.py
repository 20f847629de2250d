"""How many CPU threads torch computes with: the CPUs this process may use, less those already busy.

torch's default is one thread per core it sees. In a container that sees the host's cores through a CPU
quota, or on a machine already busy with other work, that oversubscribes the CPUs, and torch's threads then
wait on each other: on a 2-core machine at load 6-7, one MLP epoch took 60-66 s with 2 threads and 5.9 s
with one (../shared/notes/environment.md). So the default is

    threads = max(1, available - busy)

where ``available`` is the CPUs of this process's affinity mask, capped by its cgroup's CPU quota, and
``busy`` the processes that are running right now, other than this one (the median of three samples of
``procs_running`` over 40 ms: the load average lags by a minute). ``--threads N`` (or ``$WMPROOF_THREADS``)
fixes it; seeded results are reproducible for a fixed thread count, and may differ between counts (float
sums are taken in another order).

This module imports nothing heavy: the CLI calls it before any command, torch or not, and the default is
worked out only when a command first chooses a torch device.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from pathlib import Path


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup v2 (``cpu.max``) or v1
    (``cpu.cfs_quota_us``) quota when one is set."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def _cgroup_quota() -> float | None:
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return quota / period
    except (OSError, ValueError):
        pass
    return None


def busy_cpus(samples: int = 3, interval: float = 0.02) -> int:
    """Processes running now besides this one (``procs_running`` of /proc/stat, median of ``samples``)."""
    counts = []
    for i in range(samples):
        try:
            for line in Path("/proc/stat").read_text().splitlines():
                if line.startswith("procs_running "):
                    counts.append(int(line.split()[1]))
                    break
        except (OSError, ValueError):
            return 0
        if i + 1 < samples:
            time.sleep(interval)
    return max(0, int(statistics.median(counts)) - 1) if counts else 0


def default_threads() -> int:
    available = available_cpus()
    return max(1, min(available, available - busy_cpus()))


def configure_threads(requested: int | None) -> int:
    """Set the thread count for torch (now if it is loaded, else through the environment it reads when it
    loads) and return it: ``requested``, or :func:`default_threads`."""
    threads = requested if requested is not None else default_threads()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    return threads


#: Set by the CLI when no count was given: the default is worked out (sampling the CPUs for 40 ms) only when a
#: command first asks for a torch device, so that commands without torch (``check``, ``keygen``, ``publish``)
#: do not wait for it. The Python API never sets it: there, torch's own setting stands.
_deferred = False


def request_threads(requested: int | None) -> None:
    """The CLI's ``--threads``: applied at once when given, else deferred to :func:`apply_requested`."""
    global _deferred
    if requested is not None:
        configure_threads(requested)
        _deferred = False
    else:
        _deferred = True


def apply_requested() -> None:
    """Apply a deferred default (:func:`request_threads`); called where a torch device is chosen."""
    global _deferred
    if _deferred:
        _deferred = False
        configure_threads(None)


def threads_in_use() -> int:
    """The thread count torch computes with now (1 where torch is not loaded)."""
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else 1
