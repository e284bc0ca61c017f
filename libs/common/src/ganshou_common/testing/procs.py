"""Helpers for tests that run Ganshou processes for real: free ports, subprocesses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
