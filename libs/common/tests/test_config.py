"""How many CPUs a process may use: its affinity, capped by its cgroup's CPU quota."""

from __future__ import annotations

import os

import pytest

from ganshou_common.config import ConfigError, town_zone, usable_cpus


@pytest.mark.parametrize(("cpu_max", "quota_cpus"), [("max 100000\n", None), ("50000 100000\n", 1),
                                                      ("150000 100000\n", 1), ("400000 100000\n", 4)])
def test_the_quota_caps_the_affinity(tmp_path, cpu_max: str, quota_cpus: int | None) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    pinned = len(os.sched_getaffinity(0))
    assert usable_cpus(str(path)) == (pinned if quota_cpus is None else min(pinned, quota_cpus))


def test_without_a_cgroup_file_the_affinity_counts(tmp_path) -> None:
    assert usable_cpus(str(tmp_path / "absent")) == len(os.sched_getaffinity(0))


def test_the_towns_zone_is_shanghai_unless_set_and_a_wrong_one_is_named(monkeypatch) -> None:
    monkeypatch.delenv("GANSHOU_TOWN_TIMEZONE", raising=False)
    assert town_zone().key == "Asia/Shanghai"
    monkeypatch.setenv("GANSHOU_TOWN_TIMEZONE", "Asia/Urumqi")
    assert town_zone().key == "Asia/Urumqi"
    monkeypatch.setenv("GANSHOU_TOWN_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ConfigError, match="GANSHOU_TOWN_TIMEZONE"):
        town_zone()
