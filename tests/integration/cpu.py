"""CPU seconds spent by each process of a running system and of the stack under it, read
from /proc: for the capacity scenario and the whole-system bench."""

from __future__ import annotations

import os
from pathlib import Path

from .system import System


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def _all_pids() -> list[int]:
    return [int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit()]


def process_pids(system: System, run: Path) -> dict[str, list[int]]:
    """Each Ganshou process by name, plus the Kafka broker and the PostgreSQL server (the
    postmaster and its backends) of the stack whose run folder is `run`."""
    pids = {n: [p.popen.pid] for n, p in system.procs.items() if p.popen and p.popen.poll() is None}
    pids["kafka"], pids["postgresql"] = [], postgres_pids(run)
    for pid in _all_pids():
        try:
            if "kafka.Kafka" in (cmd := _cmdline(pid)) and str(run) in cmd:
                pids["kafka"].append(pid)
        except OSError:
            pass  # gone meanwhile
    return pids


def postgres_pids(run: Path) -> list[int]:
    """The PostgreSQL server of the stack whose run folder is `run`: the postmaster and its
    backends."""
    postmaster_file = (run / "postgres").resolve() / "data" / "postmaster.pid"
    postmaster = int(postmaster_file.read_text().split()[0]) if postmaster_file.exists() else -1
    out = []
    for pid in _all_pids():
        try:
            if pid == postmaster or int(_stat(pid)[1]) == postmaster:
                out.append(pid)
        except (OSError, IndexError, ValueError):
            pass  # gone meanwhile
    return out


def cpu_seconds(pids: dict[str, list[int]]) -> dict[tuple[str, int], float]:
    """User + system CPU seconds so far of each (name, pid) still there."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, ps in pids.items():
        for pid in ps:
            try:
                fields = _stat(pid)
                out[(name, pid)] = (int(fields[11]) + int(fields[12])) / tick
            except (OSError, IndexError):
                pass
    return out


def used_between(before: dict[tuple[str, int], float], after: dict[tuple[str, int], float]) -> dict[str, float]:
    """CPU seconds by name between two readings. Take `after` over the processes found
    then (process_pids again): a database backend or a restarted process born in between
    counts whole; one gone in between counts up to its last reading only."""
    used: dict[str, float] = {}
    for key, seconds in after.items():
        used[key[0]] = used.get(key[0], 0.0) + seconds - before.get(key, 0.0)
    for name, _ in before:
        used.setdefault(name, 0.0)
    return used
