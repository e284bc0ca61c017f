"""Helpers for tests that run Ganshou processes for real: free ports, subprocesses."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path


_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, below the kernel's ephemeral range: a port the kernel hands
    out for bind(0) can be taken by an outgoing connection (a client of Kafka or PostgreSQL)
    before the server started with it binds it (seen once: "Address already in use")."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(1000):
        port = random.randint(max(1024, low - 12000), low - 1)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


def spawn_module(module: str, env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """Start `python -m module args…` in its own session with `env` added; output to `log`."""
    out = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", module, *args], env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL, timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
