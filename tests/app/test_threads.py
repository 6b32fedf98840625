"""The forward pass uses the CPUs the process may use, counted as a container counts them."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import threads


@pytest.mark.parametrize(
    ("setting", "cpus", "expected"), [(0, 1, 1), (0, 2, 2), (0, 16, 16), (3, 16, 3), (4, 2, 4)]
)
def test_the_forward_pass_gets_every_cpu_unless_told(setting: int, cpus: int, expected: int) -> None:
    assert threads.forward_threads(setting, cpus) == expected


def quota_files(
    monkeypatch, tmp_path: Path, v2: str | None = None, v1: tuple[str, str] | None = None
) -> None:
    """Points the cgroup readers at files under tmp_path (absent ones stay absent)."""
    paths = {"CGROUP_V2_CPU_MAX": tmp_path / "cpu.max", "CGROUP_V1_QUOTA": tmp_path / "quota"}
    paths["CGROUP_V1_PERIOD"] = tmp_path / "period"
    for name, path in paths.items():
        monkeypatch.setattr(threads, name, path)
    if v2 is not None:
        paths["CGROUP_V2_CPU_MAX"].write_text(v2)
    if v1 is not None:
        paths["CGROUP_V1_QUOTA"].write_text(v1[0])
        paths["CGROUP_V1_PERIOD"].write_text(v1[1])


@pytest.mark.parametrize(
    ("v2", "v1", "quota"),
    [
        ("max 100000\n", None, None),  # no limit
        ("200000 100000\n", None, 2.0),  # docker run --cpus 2
        ("150000 100000\n", None, 1.5),
        (None, ("-1", "100000"), None),  # cgroup v1, no limit
        (None, ("50000", "100000"), 0.5),
        (None, None, None),  # no cgroup files at all
        ("garbage\n", None, None),
    ],
)
def test_the_cgroup_quota_is_read_in_cpus(monkeypatch, tmp_path: Path, v2, v1, quota) -> None:
    quota_files(monkeypatch, tmp_path, v2, v1)
    assert threads.cgroup_cpu_quota() == quota


def test_a_quota_caps_the_cpus_the_affinity_mask_allows(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(64)))
    quota_files(monkeypatch, tmp_path, v2="150000 100000\n")
    assert threads.available_cpus() == 2  # 1.5 CPUs of time: two threads can use it
    quota_files(monkeypatch, tmp_path, v2="max 100000\n")
    assert threads.available_cpus() == 64


def test_the_model_endpoint_reports_the_forward_threads(make_client) -> None:
    assert make_client(cpu_threads=1).get("/v1/model").json()["cpu_threads"] == 1
