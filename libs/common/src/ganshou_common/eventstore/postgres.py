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

# One round trip appends to any number of streams: check each stream's head against its
# expected version, insert the events (ordered by stream and version, so positions follow
# versions within a stream), and record them in the outbox. Nothing is inserted unless
# every stream is where the caller expected it. Two forms: one metadata for every event
# ($11-$14 scalars), or each event its own (arrays: a group commit's batch appends for many
# commands at once; the arrays cost a bulk append ~7%, hence the scalar form).
_APPEND_TEMPLATE = """
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[],
                         $7::bytea[], $8::text[], $9::timestamptz[]{meta_in})
        AS e(event_id, stream_id, stream_type, expected, n, event_type, payload, community_id, occurred_at{meta_cols})
), heads AS (
    SELECT s.stream_id,
           coalesce((SELECT max(version) FROM events ev WHERE ev.stream_id = s.stream_id), 0) AS v
    FROM (SELECT DISTINCT stream_id FROM input) s
), checked AS (
    SELECT bool_and(i.expected = -1 OR i.expected = h.v) AS ok
    FROM input i JOIN heads h USING (stream_id)
), ins AS (
    INSERT INTO events (event_id, stream_id, stream_type, version, event_type, payload,
                        community_id, occurred_at, recorded_at, correlation_id, causation_id,
                        actor_subject, actor_role)
    SELECT i.event_id, i.stream_id, i.stream_type, h.v + i.n, i.event_type, i.payload, i.community_id,
           i.occurred_at, $10, {meta_out}
    FROM input i JOIN heads h USING (stream_id), checked
    WHERE checked.ok
    ORDER BY i.stream_id, i.n
    RETURNING position, event_id, version
), ob AS (
    INSERT INTO outbox (position) SELECT position FROM ins
)
SELECT position, event_id, version FROM ins
"""
_APPEND = _APPEND_TEMPLATE.format(meta_in="", meta_cols="", meta_out="$11, $12, $13, $14")
_APPEND_EACH = _APPEND_TEMPLATE.format(
    meta_in=", $11::text[], $12::text[], $13::text[], $14::text[]",
    meta_cols=", correlation_id, causation_id, actor_subject, actor_role",
    meta_out="i.correlation_id, i.causation_id, i.actor_subject, i.actor_role")


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
        return await self.append_many([append], meta)

    async def append_many(self, appends: list[StreamAppend], meta: Metadata = Metadata()) -> list[StoredEvent]:
        """Append to several streams at once (a bulk import): all of them or none."""
        return await self._append(appends, meta)

    async def append_each(self, appends: list[tuple[StreamAppend, list[Metadata]]]) -> list[StoredEvent]:
        """append_many with each event's own metadata (a group commit's batch): all or none."""
        metas = [m for _, ms in appends for m in ms]
        if len(metas) != sum(len(a.events) for a, _ in appends):
            raise ValueError("append_each takes one metadata per event")
        return await self._append([a for a, _ in appends], metas if len(set(metas)) > 1 else metas[0] if metas else Metadata())

    async def _append(self, appends: list[StreamAppend], meta: Metadata | list[Metadata]) -> list[StoredEvent]:
        """`meta`: every event's, or one per event in order."""
        flat = [(a, n, e) for a in appends for n, e in enumerate(a.events, start=1)]
        if not flat:
            return []
        if len({a.stream_id for a in appends}) != len(appends):
            raise ValueError("append_many takes each stream once")
        now = datetime.now(UTC)
        ids = [new_event_id() for _ in flat]
        if isinstance(meta, Metadata):
            sql, meta_args = _APPEND, (meta.correlation_id, meta.causation_id, meta.actor_subject, meta.actor_role)
            metas = [meta] * len(flat)
        else:
            sql, metas = _APPEND_EACH, meta
            meta_args = ([m.correlation_id for m in metas], [m.causation_id for m in metas],
                         [m.actor_subject for m in metas], [m.actor_role for m in metas])
        try:
            rows = await self.conn.fetch(
                sql, ids, [a.stream_id for a, _, _ in flat], [a.stream_type for a, _, _ in flat],
                [a.expected_version for a, _, _ in flat], [n for _, n, _ in flat],
                [e.event_type for _, _, e in flat], [e.payload for _, _, e in flat],
                [e.community_id for _, _, e in flat], [e.occurred_at or now for _, _, e in flat], now, *meta_args,
            )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "events_stream_id_version_key":  # a concurrent writer won
                raise StreamVersionConflict(appends[0].stream_id, appends[0].expected_version, None) from None
            raise
        if not rows:
            await self._raise_conflict(appends)
        placed = {r["event_id"]: (r["position"], r["version"]) for r in rows}
        return sorted(
            (StoredEvent(placed[i][0], i, a.stream_id, a.stream_type, placed[i][1], e.event_type, e.payload,
                         e.community_id, e.occurred_at or now, now, m)
             for i, (a, _, e), m in zip(ids, flat, metas, strict=True)),
            key=lambda ev: ev.position,
        )

    async def _raise_conflict(self, appends: list[StreamAppend]) -> None:
        for a in appends:
            head = await self.stream_version(a.stream_id)
            if a.expected_version not in (ANY_VERSION, head):
                raise StreamVersionConflict(a.stream_id, a.expected_version, head)
        raise StreamVersionConflict(appends[0].stream_id, appends[0].expected_version, None)

    async def write_later(self, sql: str, *args: object) -> None:
        """A write no decision reads back in the same transaction (a read model's insert):
        a group commit's staged batch runs all of its commands' together at its end, in
        one round trip (group_commit); here it runs now."""
        await self.conn.execute(sql, *args)

    async def find_request(self, request_id: str) -> RequestRecord | None:
        r = await self.conn.fetchrow(
            "SELECT request_id, fingerprint, result FROM requests WHERE request_id = $1", request_id
        )
        return RequestRecord(r["request_id"], r["fingerprint"], bytes(r["result"])) if r else None

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


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to reset on release: the store's connections never change session state
    (no SET, LISTEN, cursors or advisory locks; asyncpg still rolls back an open
    transaction). asyncpg's default reset costs a round trip per transaction."""


class PostgresEventStore:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    @classmethod
    async def connect(cls, dsn: str, min_size: int = 2, max_size: int = 20) -> "PostgresEventStore":
        # The append statement's plan does not depend on its arrays' contents: a generic
        # plan saves re-planning it on every command (measured: 1.0 → 0.7 ms a statement).
        return cls(await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, reset=_keep_session,
                                             server_settings={"plan_cache_mode": "force_generic_plan"}))

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
        async with self.pool.acquire() as conn:
            return await PostgresTransaction(conn).find_request(request_id)

    async def outbox_backlog(self) -> int:
        return await self.pool.fetchval("SELECT count(*) FROM outbox")
