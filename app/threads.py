"""How many CPU threads the model's forward pass may use, and none for OpenCV's own pool.

A forward pass on the CPU is split across torch's OpenMP team, whose threads wait for each other
at every operator. When that team takes every CPU, the event loop and the preprocessing threads
preempt one of its members in the middle of a pass and the whole team stalls until it runs again:
on a 2-CPU machine a batch-1 pass then took 17-20 ms instead of 4.5 (docs/performance.md). So
the team gets one CPU fewer than the process may use, leaving one to HTTP and preprocessing.

"The CPUs the process may use" is what a container is given, not what the host has: torch and
OpenCV size their pools by the host's cores, so a pod limited to 2 CPUs on a 64-core node would
run 64 threads on 2 CPUs' worth of time. The count here honours the CPU affinity mask and the
cgroup CPU quota (Docker's `--cpus`, a Kubernetes CPU limit).

OpenCV's pool is turned off: preprocessing already runs one image per threadpool thread, and its
images are a few hundred pixels a side, too small for OpenCV to gain from splitting them.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import cv2
import torch

log = logging.getLogger("capsnet.serve")
CGROUP_V2_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def available_cpus() -> int:
    """CPUs this process may run on: the affinity mask, capped by a cgroup CPU quota if any."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    return max(1, min(cpus, math.ceil(quota))) if quota is not None else cpus


def cgroup_cpu_quota() -> float | None:
    """The cgroup's CPU limit in CPUs (v2 `cpu.max`, else v1 CFS quota), None when unlimited."""
    try:
        if CGROUP_V2_CPU_MAX.exists():
            quota, period = CGROUP_V2_CPU_MAX.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        if CGROUP_V1_QUOTA.exists():
            quota_us = int(CGROUP_V1_QUOTA.read_text())
            return None if quota_us <= 0 else quota_us / int(CGROUP_V1_PERIOD.read_text())
    except (OSError, ValueError):
        return None
    return None


def forward_threads(setting: int, cpus: int) -> int:
    """`setting` when given (> 0), else one fewer than `cpus`, at least one."""
    return setting if setting > 0 else max(1, cpus - 1)


def configure_threads(setting: int, device: torch.device) -> int:
    """Sizes torch's CPU pool for the forward pass and turns OpenCV's off; returns torch's size."""
    cv2.setNumThreads(0)
    if device.type == "cpu":
        cpus = available_cpus()
        torch.set_num_threads(forward_threads(setting, cpus))
        log.info("forward pass on %d of %d CPUs", torch.get_num_threads(), cpus)
    return torch.get_num_threads()
