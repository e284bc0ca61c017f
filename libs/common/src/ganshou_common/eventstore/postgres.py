"""The event store on PostgreSQL through asyncpg.

Appends take no table lock: each transaction reads its streams' heads and inserts the next
versions; the unique (stream_id, version) key makes a concurrent writer of the same
version fail, which surfaces as StreamVersionConflict (gRPC ABORTED). The events and
their outbox rows go in with one statement.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg

from ganshou_common.eventstore.model import (
    ANY_VERSION,
    Metadata,
    RequestAlreadyRecorded,
    RequestRecord,
    StoredEvent,
    StreamAppend,
    StreamVersionConflict,
)
from ganshou_common.ids import new_event_id

_COLUMNS = (
    "position, event_id, stream_id, stream_type, version, event_type, payload, community_id, "
    "occurred_at, recorded_at, correlation_id, causation_id, actor_subject, actor_role"
)

_APPEND = """
WITH ins AS (
    INSERT INTO events (event_id, stream_id, stream_type, version, event_type, payload,
                        community_id, occurred_at, recorded_at, correlation_id, causation_id,
                        actor_subject, actor_role)
    SELECT e.event_id, $2, $3, e.version, e.event_type, e.payload, e.community_id, e.occurred_at,
           $9, $10, $11, $12, $13
    FROM unnest($1::uuid[], $4::bigint[], $5::text[], $6::bytea[], $7::text[], $8::timestamptz[])
         AS e(event_id, version, event_type, payload, community_id, occurred_at)
    RETURNING position, version
), ob AS (
    INSERT INTO outbox (position) SELECT position FROM ins
)
SELECT position, version FROM ins
"""


def row_to_event(r: asyncpg.Record) -> StoredEvent:
    return StoredEvent(
        position=r["position"], event_id=r["event_id"], stream_id=r["stream_id"],
        stream_type=r["stream_type"], version=r["version"], event_type=r["event_type"],
        payload=bytes(r["payload"]), community_id=r["community_id"], occurred_at=r["occurred_at"],
        recorded_at=r["recorded_at"],
        metadata=Metadata(r["correlation_id"], r["causation_id"], r["actor_subject"], r["actor_role"]),
    )


class PostgresTransaction:
    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn  # for the service's own read models, updated in this transaction

    async def stream_version(self, stream_id: str) -> int:
        v = await self.conn.fetchval("SELECT max(version) FROM events WHERE stream_id = $1", stream_id)
        return v or 0

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[StoredEvent]:
        rows = await self.conn.fetch(
            f"SELECT {_COLUMNS} FROM events WHERE stream_id = $1 AND version > $2 ORDER BY version",
            stream_id, after_version,
        )
        return [row_to_event(r) for r in rows]

    async def append(self, append: StreamAppend, meta: Metadata = Metadata()) -> list[StoredEvent]:
        head = await self.stream_version(append.stream_id)
        if append.expected_version != ANY_VERSION and append.expected_version != head:
            raise StreamVersionConflict(append.stream_id, append.expected_version, head)
        now = datetime.now(UTC)
        ids = [new_event_id() for _ in append.events]
        versions = list(range(head + 1, head + 1 + len(append.events)))
        try:
            # A savepoint keeps a conflict from poisoning the caller's transaction.
            async with self.conn.transaction():
                rows = await self.conn.fetch(
                    _APPEND, ids, append.stream_id, append.stream_type, versions,
                    [e.event_type for e in append.events], [e.payload for e in append.events],
                    [e.community_id for e in append.events], [e.occurred_at or now for e in append.events],
                    now, meta.correlation_id, meta.causation_id, meta.actor_subject, meta.actor_role,
                )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "events_stream_id_version_key":
                raise StreamVersionConflict(append.stream_id, append.expected_version, None) from None
            raise
        position = {r["version"]: r["position"] for r in rows}
        return [
            StoredEvent(position[v], i, append.stream_id, append.stream_type, v, e.event_type, e.payload,
                        e.community_id, e.occurred_at or now, now, meta)
            for i, v, e in zip(ids, versions, append.events, strict=True)
        ]

    async def record_request(self, request_id: str, fingerprint: str, result: bytes) -> None:
        status = await self.conn.execute(
            "INSERT INTO requests (request_id, fingerprint, result) VALUES ($1, $2, $3) "
            "ON CONFLICT (request_id) DO NOTHING",
            request_id, fingerprint, result,
        )
        if status.endswith(" 0"):
            raise RequestAlreadyRecorded(request_id)

    async def claim(self, consumer: str, stream_id: str, version: int) -> bool:
        # Insert-or-raise the checkpoint first: a concurrent claimant of the same stream
        # waits on this row until we commit, then finds the version taken and skips.
        got = await self.conn.fetchval(
            "INSERT INTO consumer_checkpoints AS c (consumer, stream_id, version) VALUES ($1, $2, $3) "
            "ON CONFLICT (consumer, stream_id) DO UPDATE SET version = EXCLUDED.version "
            "WHERE c.version < EXCLUDED.version RETURNING version",
            consumer, stream_id, version,
        )
        return got is not None


class PostgresEventStore:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    @classmethod
    async def connect(cls, dsn: str, min_size: int = 2, max_size: int = 20) -> "PostgresEventStore":
        return cls(await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size))

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTransaction]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield PostgresTransaction(conn)

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[StoredEvent]:
        async with self.pool.acquire() as conn:
            return await PostgresTransaction(conn).read_stream(stream_id, after_version)

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2",
            after_position, limit,
        )
        return [row_to_event(r) for r in rows]

    async def find_request(self, request_id: str) -> RequestRecord | None:
        r = await self.pool.fetchrow(
            "SELECT request_id, fingerprint, result FROM requests WHERE request_id = $1", request_id
        )
        return RequestRecord(r["request_id"], r["fingerprint"], bytes(r["result"])) if r else None

    async def outbox_backlog(self) -> int:
        return await self.pool.fetchval("SELECT count(*) FROM outbox")
