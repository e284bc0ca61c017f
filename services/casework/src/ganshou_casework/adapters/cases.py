"""Cases in the event store: load by replaying the stream, save by appending the new
events and updating the cases and timers read models in the same transaction."""

from __future__ import annotations

from datetime import UTC

from google.protobuf.message import Message

from ganshou.casework.v1 import events_pb2 as ev
from ganshou_casework.domain.case import Case
from ganshou_common.codec import decode_payload, new_event
from ganshou_common.errors import NotFound
from ganshou_common.eventstore import Metadata, StreamAppend, Transaction
from ganshou_common.eventstore.model import StoredEvent


def case_stream(case_id: str) -> str:
    return f"case-{case_id}"


async def load_events(tx: Transaction, case_id: str) -> list[StoredEvent]:
    return await tx.read_stream(case_stream(case_id))


async def load(tx: Transaction, case_id: str) -> Case:
    stored = await load_events(tx, case_id)
    if not stored:
        raise NotFound(f"no case {case_id!r}")
    return Case.rebuild([decode_payload(s.event_type, s.payload) for s in stored])


async def save(tx, case: Case, events: list[Message], meta: Metadata) -> None:
    """Append `events` after the version `case` was loaded at, then apply them to it."""
    if not events:
        return
    await tx.append(StreamAppend(case_stream(case.case_id or events[0].case_id), "case", case.version,
                                 [new_event(e, case.community_id or events[0].community_id) for e in events]), meta)
    for e in events:
        case.apply(e)
    await project(tx, case, events)


async def project(tx, case: Case, events: list[Message]) -> None:
    conn = tx.conn
    if len(events) == 1 and isinstance(e := events[0], ev.CaseOpened):
        # A new case (most saves): its row, in its state after the event, and its timers go
        # with the event by one statement (insert_later; columns in the tables' order).
        await tx.insert_later("cases", (e.case_id, e.demand_id, e.community_id, case.status, case.track,
                                        case.partner_id, e.opened_at.ToDatetime(tzinfo=UTC), 0))
        for p in e.promises:
            await tx.insert_later("promise_timers", (e.case_id, p.kind, p.due_at.ToDatetime(tzinfo=UTC), "pending"))
        return
    for e in events:
        match e:
            case ev.CaseOpened():
                await conn.execute(
                    "INSERT INTO cases (case_id, demand_id, community_id, status, opened_at) VALUES ($1, $2, $3, $4, $5)",
                    e.case_id, e.demand_id, e.community_id, case.status, e.opened_at.ToDatetime(tzinfo=UTC))
                await conn.executemany("INSERT INTO promise_timers (case_id, kind, due_at) VALUES ($1, $2, $3)",
                                       [(e.case_id, p.kind, p.due_at.ToDatetime(tzinfo=UTC)) for p in e.promises])
            case ev.PromiseKept() | ev.PromiseBroken():
                await conn.execute("UPDATE promise_timers SET state = $3 WHERE case_id = $1 AND kind = $2",
                                   e.case_id, e.kind, "kept" if isinstance(e, ev.PromiseKept) else "broken")
            case ev.CaseLinked():
                await conn.execute("UPDATE promise_timers SET state = 'withdrawn' WHERE case_id = $1 AND state = 'pending'",
                                   e.case_id)
    broken = sum(1 for p in case.promises.values() if p.state == "broken")
    await conn.execute("UPDATE cases SET status = $2, track = $3, partner_id = $4, broken_promises = $5 WHERE case_id = $1",
                       case.case_id, case.status, case.track, case.partner_id, broken)
