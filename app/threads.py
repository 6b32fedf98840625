"""How many CPU threads the model's forward pass may use, and none for OpenCV's own pool.

A forward pass on the CPU is split across torch's OpenMP team, whose threads wait for each other
at every operator, so the team must not be larger than the CPUs the process really gets: torch
sizes it by the host's cores, and a pod limited to 2 CPUs on a 64-core node would run a team of
dozens on 2 CPUs' worth of time, each pass stalling on preempted members. The count here is what
a container is given: the CPU affinity mask capped by the cgroup CPU quota (Docker's `--cpus`, a
Kubernetes CPU limit). Leaving one of them to HTTP and preprocessing did not pay on 2 CPUs (the
load test's `service-cpus-less-one`: 0.85-0.95x the requests per second), so the team takes all.

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
    """`setting` when given (> 0), else every CPU the process may use."""
    return setting if setting > 0 else cpus


def configure_threads(setting: int, device: torch.device) -> int:
    """Sizes torch's CPU pool for the forward pass and turns OpenCV's off; returns torch's size."""
    cv2.setNumThreads(0)
    if device.type == "cpu":
        cpus = available_cpus()
        torch.set_num_threads(forward_threads(setting, cpus))
        log.info("forward pass on %d of %d CPUs", torch.get_num_threads(), cpus)
    return torch.get_num_threads()
