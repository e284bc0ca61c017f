"""Promises under faults: with short promises, casework (server and worker) is killed
across the due times of open cases; when it returns, every broken promise is recorded
within 5 s, once, and the kept ones stay kept."""

from __future__ import annotations

import asyncio
import random
import signal
import time

import asyncpg
import pytest

from ganshou.casework.v1 import casework_service_pb2 as capi
from ganshou.intake.v1 import events_pb2 as iev
from ganshou.intake.v1 import intake_service_pb2 as iapi
from ganshou_casework.app.handlers import case_id_for

from .loadgen import Client, Ledger, Mix, rid

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]
RESPONSE_S, ON_SITE_S = 12, 8
CW = "ganshou.casework.v1."


async def test_every_broken_promise_is_reported_within_5_s_of_casework_returning(rsystem, report, soak) -> None:
    short = {"CASEWORK_RESPONSE_MINUTES_HOTLINE": str(RESPONSE_S / 60),
             "CASEWORK_ON_SITE_MINUTES_EMERGENCY": str(ON_SITE_S / 60)}
    for name in ("casework", "casework-worker"):
        rsystem.procs[name].env.update(short)
        await rsystem.restart(name)
    ledger = Ledger()
    client = Client({s: rsystem.procs[s].grpc_port for s in ("intake", "casework", "partner")}, rsystem.auth(), ledger)
    rng = random.Random()
    rounds, calls = (6, 20) if soak else (2, 6)
    results = []
    dsn = rsystem.procs["casework"].env["DATABASE_URL"]
    try:
        mix = await Mix.set_up(client, 1, 3)
        c = mix.town.communities[0]
        for _ in range(rounds):
            cases = []
            for n in range(calls):
                kind = iev.CALL_KIND_EMERGENCY if n % 3 == 0 else iev.CALL_KIND_DEMAND
                reply = await client.call("intake", "LogHotlineCall", iapi.LogHotlineCallRequest(
                    request_id=rid(), community_id=c.id, kind=kind, household_id=c.households[0][0],
                    category="water", summary="停水"))
                cases.append(case_id_for(reply.demand_id))
            for case_id in cases:
                await client.until("casework", "GetCase", capi.GetCaseRequest(case_id=case_id))
            kept = cases[: calls // 4]  # some answered in time: their response promise is kept
            for case_id in kept:
                await client.call("casework", "RespondToCase", capi.RespondToCaseRequest(request_id=rid(),
                                                                                         case_id=case_id))
            # Down across every due time, for a random while past it.
            for name in ("casework-worker", "casework"):
                await asyncio.to_thread(rsystem.kill, name, signal.SIGKILL)
            await asyncio.sleep(RESPONSE_S + rng.uniform(1, 6))
            for name in ("casework", "casework-worker"):
                rsystem.spawn(name)
            await asyncio.gather(*(rsystem.wait_ready(n) for n in ("casework", "casework-worker")))
            back = time.monotonic()
            due = await _pending_promises(dsn, cases)
            async with asyncio.timeout(30):
                while (broken := await _broken(dsn, cases)) < due:
                    await asyncio.sleep(0.1)
            results.append(round(time.monotonic() - back, 2))
            assert await _broken(dsn, cases) == due  # each once
            assert await _kept(dsn, kept) == len(kept)
    finally:
        await client.close()
    report.add("Promises under faults", rounds=rounds, cases_per_round=calls,
               seconds_from_return_to_all_reported=results, worst=max(results))
    assert max(results) <= 5.0, results


async def _count(dsn: str, sql: str, *args) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def _pending_promises(dsn: str, cases: list[str]) -> int:
    """Promises made on these cases and neither kept nor withdrawn: each must break."""
    made = await _count(dsn, "SELECT count(*) FROM promise_timers WHERE case_id = ANY($1)", cases)
    kept = await _count(dsn, "SELECT count(*) FROM events WHERE event_type = $1 AND stream_id = ANY($2)",
                        CW + "PromiseKept", [f"case-{c}" for c in cases])
    return made - kept


async def _broken(dsn: str, cases: list[str]) -> int:
    return await _count(dsn, "SELECT count(*) FROM events WHERE event_type = $1 AND stream_id = ANY($2)",
                        CW + "PromiseBroken", [f"case-{c}" for c in cases])


async def _kept(dsn: str, cases: list[str]) -> int:
    return await _count(dsn, "SELECT count(*) FROM events WHERE event_type = $1 AND stream_id = ANY($2)",
                        CW + "PromiseKept", [f"case-{c}" for c in cases])
