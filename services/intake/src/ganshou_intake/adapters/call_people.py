"""Whose a logged call's caller phone is: each call's phone is sealed under the call's own
key, so erasing a resident must find the calls that name them (and the household's, once
its last resident is erased) to erase those keys too."""

from __future__ import annotations

import asyncpg

from ganshou.intake.v1 import events_pb2 as ev
from ganshou_common.pii import MasterKey, PostgresKeyRing
from ganshou_intake.domain.events import stream

Conn = asyncpg.Connection | asyncpg.Pool
CALL = ev.HotlineCallReceived.DESCRIPTOR.full_name
ERASED_AT_UPGRADE = "intake: an earlier erasure completed (0104)"  # erased_subjects.erased_by


async def record(conn: Conn, rows: list[tuple[str, str, str]]) -> None:
    """(call id, household id, resident id) of calls whose caller phone is sealed."""
    await conn.executemany("INSERT INTO call_people (call_id, household_id, resident_id) VALUES ($1, $2, $3) "
                           "ON CONFLICT DO NOTHING", rows)


async def naming(conn: Conn, resident_id: str, household_id: str | None = None) -> list[str]:
    """The calls naming the resident and, when given, the household."""
    rows = await conn.fetch("SELECT call_id FROM call_people WHERE resident_id = $1 "
                            "UNION SELECT call_id FROM call_people WHERE household_id = $2 AND $2 <> '' ORDER BY 1",
                            resident_id, household_id or "")
    return [r["call_id"] for r in rows]


def _named(call: ev.HotlineCallReceived) -> bool:
    return bool(call.caller_phone_sealed) and bool(call.household_id or call.resident_id)


def row_of(call: ev.HotlineCallReceived) -> tuple[str, str, str] | None:
    return (call.call_id, call.household_id, call.resident_id) if _named(call) else None


async def backfill(pool: asyncpg.Pool, master: MasterKey) -> int:
    """The calls logged before 0104, read from their events once (0104 marks them pending),
    and the erasures made before it completed as they are now: the calls naming an erased
    resident, and each household whose residents are all erased with the calls naming it.
    Replicas starting together wait on the marker's lock; the later ones find it done."""
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT pending FROM call_people_backfill FOR UPDATE"):
            return 0
        rows = [row for r in await conn.fetch("SELECT payload FROM events WHERE event_type = $1", CALL)
                if (row := row_of(ev.HotlineCallReceived.FromString(bytes(r["payload"])))) is not None]
        await record(conn, rows)
        households = [r["household_id"] for r in await conn.fetch(
            "SELECT household_id FROM residents GROUP BY household_id HAVING bool_and(erased)")]
        calls = [r["call_id"] for r in await conn.fetch(
            "SELECT c.call_id FROM call_people c WHERE c.household_id = ANY($1) OR EXISTS "
            "(SELECT 1 FROM residents r WHERE r.resident_id = c.resident_id AND r.erased)", households)]
        ring = PostgresKeyRing(conn, master)
        for subject in [stream("household", h) for h in households] + [stream("call", c) for c in calls]:
            await ring.erase(subject, ERASED_AT_UPGRADE)
        await conn.execute("UPDATE call_people_backfill SET pending = false")
        return len(rows)
