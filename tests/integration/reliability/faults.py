"""Faults injected while the load runs, each at a random moment: SIGKILL of any process
of the system (then restarted, as Kubernetes would), SIGTERM of a server, the Kafka
broker and PostgreSQL stopped and started again."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from dataclasses import dataclass, field

from ..system import System
from .stack import PrivateStack

KILLABLE = ("intake", "intake-relay", "casework", "casework-worker", "casework-relay", "partner", "partner-worker",
            "partner-relay", "metrics")
SERVERS = ("intake", "casework", "partner")
ALL = tuple(f"kill:{p}" for p in KILLABLE) + tuple(f"term:{s}" for s in SERVERS) + ("broker", "postgres")


@dataclass
class Injected:
    fault: str
    at_s: float
    outage_s: float


@dataclass
class Faults:
    system: System
    stack: PrivateStack
    rng: random.Random
    done: list[Injected] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    _ours: set[str] = field(default_factory=set)

    async def inject(self, fault: str, t0: float) -> None:
        started = time.monotonic()
        kind, _, target = fault.partition(":")
        if kind in ("kill", "term"):
            self._ours.add(target)
            sig = signal.SIGKILL if kind == "kill" else signal.SIGTERM
            await asyncio.to_thread(self.system.kill, target, sig)
            await asyncio.sleep(self.rng.uniform(0, 2))
            self.system.spawn(target)
            self._ours.discard(target)
            # The metrics worker first recovers its tables from their changelogs: minutes at soak size.
            await self.system.wait_ready(target, timeout=900 if target == "metrics" else 120)
        elif fault == "broker":
            self._ours.add("broker")
            await asyncio.to_thread(self.stack.down, "kafka")
            await asyncio.sleep(self.rng.uniform(2, 6))
            await asyncio.to_thread(self.stack.up, "kafka")
            self._ours.discard("broker")
        elif fault == "postgres":
            await asyncio.to_thread(self.stack.down, "postgres")
            await asyncio.sleep(self.rng.uniform(1, 4))
            await asyncio.to_thread(self.stack.up, "postgres")
        self.done.append(Injected(fault, round(started - t0, 1), round(time.monotonic() - started, 1)))

    async def watch(self, stop: asyncio.Event, progress=None) -> None:
        """A process that dies by itself is a crash: noted, and restarted as Kubernetes would
        (the broker too, outside its own fault)."""
        last = time.monotonic()
        while not stop.is_set():
            for name, p in self.system.procs.items():
                if name not in self._ours and p.popen is not None and p.popen.poll() is not None:
                    self.crashes.append(f"{name} exited {p.popen.returncode}")
                    self.system.spawn(name)
            if "broker" not in self._ours and not self.stack.kafka_alive():
                self.crashes.append("kafka broker died")
                self._ours.add("broker")
                await asyncio.to_thread(self.stack.up, "kafka")
                self._ours.discard("broker")
            if progress and time.monotonic() - last > 60:
                last = time.monotonic()
                print(progress(), flush=True)
            await asyncio.sleep(0.5)

    async def run(self, schedule: list[tuple[float, str]], t0: float) -> None:
        """Inject each (second, fault) of the schedule in turn, none before its time."""
        for at, fault in schedule:
            await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
            await self.inject(fault, t0)


def schedule(rng: random.Random, duration_s: float, every_s: float | None) -> list[tuple[float, str]]:
    """Every fault once at random moments (small), or one a minute, jittered, cycling
    through every kind in shuffled rounds (soak)."""
    if every_s is None:
        faults = list(ALL)
        rng.shuffle(faults)
        times = sorted(rng.uniform(3, duration_s - 10) for _ in faults)
        return list(zip(times, faults))
    out, pool = [], []
    at = every_s / 2
    while at < duration_s - 10:
        if not pool:
            pool = list(ALL)
            rng.shuffle(pool)
        out.append((at + rng.uniform(-every_s / 4, every_s / 4), pool.pop()))
        at += every_s
    return out
