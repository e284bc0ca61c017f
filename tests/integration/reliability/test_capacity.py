"""The rate the whole system sustains on this machine under the load generator's mix, and
the CPU each process spends per command: the soak's rate is only meaningful beside it.
Measured, never asserted (performance is not a test); the run must still be clean."""

from __future__ import annotations

import os
import time

import pytest

from ..cpu import cpu_seconds, process_pids, used_between
from .loadgen import Client, Ledger, Mix

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]


async def test_capacity(rsystem, private_stack, report, soak) -> None:
    rate, duration = (300, 120) if soak else (40, 20)
    ledger = Ledger()
    ports = {s: rsystem.procs[s].grpc_port for s in ("intake", "casework", "partner")}
    client = Client(ports, rsystem.auth(), ledger)
    try:
        mix = await Mix.set_up(client, 20 if soak else 4, 40 if soak else 8, seed=11)
        def pids() -> dict[str, list[int]]:  # the load generator is this test's own process
            return {**process_pids(rsystem, private_stack.run), "load generator": [os.getpid()]}

        before, sent, t0 = cpu_seconds(pids()), ledger.sent, time.monotonic()
        await mix.run(rate, duration)
        elapsed, after = time.monotonic() - t0, cpu_seconds(pids())
    finally:
        await client.close()
    n = ledger.sent - sent
    used = used_between(before, after)
    report.add(
        "Capacity (no faults)",
        rate_asked=f"{rate} commands/s for {duration} s",
        sustained=f"{n / elapsed:.1f} commands/s ({n} commands in {elapsed:.0f} s, every one answered)",
        cpu_cores_busy=f"{sum(used.values()) / elapsed:.2f} of {len(os.sched_getaffinity(0))}",
        cpu_ms_per_command={k: round(v / n * 1000, 2) for k, v in sorted(used.items(), key=lambda kv: -kv[1])},
        refused=len(ledger.refused),
    )
    assert not ledger.refused, ledger.refused[:3]
