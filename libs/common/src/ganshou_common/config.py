"""Configuration from environment variables only, failing fast with the variable's name."""

from __future__ import annotations

import os
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class ConfigError(RuntimeError):
    pass


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None or value == "":
        raise ConfigError(f"environment variable {name} is required but not set")
    return value


def env_int(name: str, default: int | None = None) -> int:
    raw = env(name, None if default is None else str(default))
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be an integer, got {raw!r}") from None


def town_zone() -> ZoneInfo:
    """The town's time zone (GANSHOU_TOWN_TIMEZONE, an IANA name; Asia/Shanghai by default):
    where its calendar months, an offering's capacity periods, begin and end."""
    name = os.environ.get("GANSHOU_TOWN_TIMEZONE") or "Asia/Shanghai"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError("environment variable GANSHOU_TOWN_TIMEZONE must be an IANA time zone such as "
                          f"Asia/Shanghai, got {name!r}") from None


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"environment variable {name} must be a boolean, got {raw!r}")


def usable_cpus(cpu_max: str = "/sys/fs/cgroup/cpu.max") -> int:
    """The CPUs this process may use: those it is pinned to, no more than its cgroup's CPU
    quota (a Kubernetes CPU limit) allows, in whole CPUs."""
    cpus = len(os.sched_getaffinity(0))
    try:
        with open(cpu_max) as f:  # cgroup v2: "<quota> <period>" or "max <period>"
            quota, period = f.read().split()
        if quota != "max":
            cpus = min(cpus, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return cpus
