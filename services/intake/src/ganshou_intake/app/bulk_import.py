"""ImportHouseholds' stream: rows (one a message, or many in a message's `rows`) gathered
into chunks, each chunk its own transaction (IntakeApp.import_chunk), a few chunks in flight
at once.

One chunk at a time left a core idle: while PostgreSQL wrote a chunk, the server waited,
and while the server sealed and built the next, PostgreSQL did. The chunks are independent
(their households are new, their ids derive from the import's request id and row numbers),
so they may commit in any order; the response keeps the stream's order. A chunk failing
ends the import with its error once the chunks before it are in; those in flight after it
are cancelled (rolled back) or land. Either way a retry with the same request id adds only
what is missing.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol

from ganshou.intake.v1 import intake_service_pb2 as api
from ganshou_common.errors import InvalidArgument
from ganshou_common.grpc_scaffold.auth import Principal

CHUNK = 1000
IN_FLIGHT = 3  # measured (2026-11-29): one at a time 2,954 events/s, three ~4,800 (docs/benchmarks.md)


class ChunkImporter(Protocol):
    async def import_chunk(self, who: Principal, cid: str, request_id: str,
                           rows: list[tuple[int, api.RegisterHouseholdRequest]]) -> api.ImportHouseholdsResponse: ...


async def import_households(app: ChunkImporter, who: Principal, cid: str,
                            messages: AsyncIterator[api.ImportHouseholdsRequest], *,
                            chunk_size: int = CHUNK, in_flight: int = IN_FLIGHT) -> api.ImportHouseholdsResponse:
    total = api.ImportHouseholdsResponse()
    pending: deque[asyncio.Task[api.ImportHouseholdsResponse]] = deque()
    request_id, chunk = "", []
    seen: set[int] = set()  # row numbers: a row's ids derive from the import's request id and its number
    highest = 0

    def launch() -> None:
        pending.append(asyncio.create_task(app.import_chunk(who, cid, request_id, chunk)))

    try:
        async for msg in messages:
            if not msg.request_id or (request_id and msg.request_id != request_id):
                raise InvalidArgument.field("request_id", "required, and the same on every message of one import")
            request_id = msg.request_id
            for number, household in _rows(msg):
                number = number or highest + 1  # an unnumbered row: the next number
                if number < 1 or number in seen:
                    total.rejected.append(api.ImportRowRejected(
                        row_number=number, field="row_number",
                        reason="must be 1 or more" if number < 1 else "repeated: each row of an import needs its own"))
                    continue
                seen.add(number)
                highest = max(highest, number)
                chunk.append((number, household))
                if len(chunk) >= chunk_size:
                    launch()
                    chunk = []
                    if len(pending) >= in_flight:
                        _merge(total, await pending.popleft())
        if chunk:
            launch()
        while pending:
            _merge(total, await pending.popleft())
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return total


def _rows(msg: api.ImportHouseholdsRequest) -> list[tuple[int, api.RegisterHouseholdRequest]]:
    """A message's rows: its own household (also when it carries nothing, which the import
    then reports as a rejected row), then those in bulk."""
    own = [(msg.row_number, msg.household)] if msg.HasField("household") or not msg.rows else []
    return own + [(r.row_number, r.household) for r in msg.rows]


def _merge(total: api.ImportHouseholdsResponse, part: api.ImportHouseholdsResponse) -> None:
    total.households_imported += part.households_imported
    total.residents_imported += part.residents_imported
    total.rejected.extend(part.rejected)
    total.household_ids.extend(part.household_ids)
