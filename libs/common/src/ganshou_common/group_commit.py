"""Group commit: concurrent commands share one PostgreSQL transaction (one fsync).

A single durable commit costs a disk flush, which caps one-transaction-per-command
throughput (~1,250/s here). The committer queues concurrent commands and runs each batch in
one transaction on one connection; the careful way, each command inside its own savepoint: a command that
fails (a domain error, a version conflict) rolls back to its savepoint and fails alone;
the others commit together. Callers get their result only after the batch has committed,
so an acknowledged command is durable, exactly as with a transaction of its own.

A batch is first tried staged: each command's decide runs with its appends, request record
and read-model rows no decision reads back (`insert_later`) kept in memory (versions
assigned from the expected versions or the heads it read, and the batch's own appends),
then the whole batch is written by one statement — a multi-stream append, each event with
its command's metadata, every record and every kept row — so a command costs its reads,
not five round trips. The batch's transaction opens (BEGIN) only when a decide runs a
statement of its own or claims a checkpoint: a batch that does neither (a demand raised in
a community already known) is that one statement, committed alone. Anything unusual (a
decide that fails, reads a stream the batch already appended to, a write refused by a
version, a key or a record already there) rolls the staged attempt back and runs the batch
the careful way, a savepoint per command.
In a staged batch, appended events get their positions and ids when the batch is written:
decides see their versions only (no command uses more).

Semantics match commands.execute: idempotent by request id, conflicts retried on fresh
state (the retry goes into a later batch). Commands are routed to a worker by a key (the
stream they write), so commands on one stream queue behind each other in one worker
instead of blocking, conflicting or deadlocking across batches; a deadlock that still
happens (two streams written in opposite orders) re-runs the whole batch. A staged batch
reads its keys' heads in one round trip, not one per command.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

from ganshou_common.commands import Decide, _replay
from ganshou_common.errors import InvalidArgument, Unavailable
from ganshou_common.eventstore.model import (
    ANY_VERSION,
    Metadata,
    NewEvent,
    RequestAlreadyRecorded,
    RequestRecord,
    StoredEvent,
    StreamAppend,
    StreamVersionConflict,
)
from ganshou_common.eventstore.postgres import OpensFirst, PostgresEventStore, PostgresTransaction, Rows

_RECORD_ALL = """
INSERT INTO requests (request_id, fingerprint, result)
SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])
ON CONFLICT (request_id) DO NOTHING
"""


# Each head by its own index lookup, as the append's (a generic plan for "= ANY ... GROUP BY"
# scanned the index: measured slower than a round trip each).
_HEADS = "SELECT k, coalesce((SELECT max(version) FROM events WHERE stream_id = k), 0) FROM unnest($1::text[]) k"


class _Unstageable(Exception):
    """The staged attempt cannot go on: the batch runs again, a savepoint per command."""


@dataclass
class _InBatch:
    """A stream the staged batch appends to: the head it expects to find, and its events."""
    stream_type: str
    base: int
    events: list[tuple[NewEvent, Metadata]] = field(default_factory=list)


class _Opened:
    """A staged batch's transaction, opened (BEGIN) by the first statement a decide runs
    on its connection or a checkpoint claimed; a batch that opens none is written by one
    statement alone."""

    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn
        self.tx: asyncpg.transaction.Transaction | None = None

    async def begin(self) -> None:
        if self.tx is None:
            self.tx = self.conn.transaction()
            await self.tx.start()


class _Staged:
    """The transaction a decide sees in a staged batch: reads go to the database, appends,
    read-model rows and the request record are kept for the batch's one write."""

    def __init__(self, tx: PostgresTransaction, opened: _Opened, streams: dict[str, _InBatch], rows: Rows,
                 heads: dict[str, int]):
        self._tx, self._opened, self._streams = tx, opened, streams  # streams: those the batch appends to
        self.conn = OpensFirst(tx.conn, self._before_statement)
        self._heads = heads  # heads read for the whole batch at its start (the commands' keys)
        self._rows = rows  # table → the rows the batch's commands keep for it
        self.record: tuple[str, str, bytes] | None = None

    async def _before_statement(self) -> None:
        """A decide's own statement opens the batch's transaction and sees the rows kept
        before it, as in a command's transaction (PostgresCommand)."""
        await self._opened.begin()
        if self._rows:
            kept = dict(self._rows)
            self._rows.clear()  # the batch's dict: what is written now is not written again
            await self._tx.insert_rows(kept)

    async def insert_later(self, table: str, row: tuple) -> None:
        self._rows.setdefault(table, []).append(row)

    async def stream_version(self, stream_id: str) -> int:
        s = self._streams.get(stream_id)
        if s:
            return s.base + len(s.events)
        return self._heads[stream_id] if stream_id in self._heads else await self._tx.stream_version(stream_id)

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[StoredEvent]:
        if stream_id in self._streams:  # its staged events are not in the database yet
            raise _Unstageable(stream_id)
        return await self._tx.read_stream(stream_id, after_version)

    async def find_request(self, request_id: str) -> RequestRecord | None:
        return await self._tx.find_request(request_id)

    async def claim(self, consumer: str, stream_id: str, version: int) -> bool:
        await self._opened.begin()  # a write: in the batch's transaction
        return await self._tx.claim(consumer, stream_id, version)

    async def append(self, append: StreamAppend, meta: Metadata = Metadata()) -> list[StoredEvent]:
        return await self.append_many([append], meta)

    async def append_many(self, appends: list[StreamAppend], meta: Metadata = Metadata()) -> list[StoredEvent]:
        now, out = datetime.now(UTC), []
        for a in appends:
            s = self._streams.get(a.stream_id)
            if s is None:
                # An expected version is taken at its word, not read: the batch's append
                # checks every stream's head (refused, the batch runs the careful way, which
                # says whose). Any version reads the head, to tell the decide its versions.
                base = a.expected_version if a.expected_version != ANY_VERSION else \
                    await self.stream_version(a.stream_id)
                s = self._streams[a.stream_id] = _InBatch(a.stream_type, base)
            head = s.base + len(s.events)
            if a.expected_version not in (ANY_VERSION, head):
                raise StreamVersionConflict(a.stream_id, a.expected_version, head)
            s.events += [(e, meta) for e in a.events]
            out += [StoredEvent(0, None, a.stream_id, a.stream_type, head + n, e.event_type, e.payload,  # type: ignore[arg-type]
                                e.community_id, e.occurred_at or now, now, meta)
                    for n, e in enumerate(a.events, start=1)]
        return out

    async def record_request(self, request_id: str, fingerprint: str, result: bytes) -> None:
        self.record = (request_id, fingerprint, result)


@dataclass
class _Pending:
    request_id: str
    fp: str
    decide: Decide
    queue: asyncio.Queue["_Pending"]
    key: str = ""
    done: asyncio.Future[bytes] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    attempts: int = 0


class GroupCommitter:
    def __init__(self, store: PostgresEventStore, workers: int = 1, max_batch: int = 64, conflict_retries: int = 3):
        self.store, self.max_batch, self.conflict_retries = store, max_batch, conflict_retries
        self.batches: Counter[str] = Counter()  # "staged" or "careful": how each batch was written
        self._queues: list[asyncio.Queue[_Pending]] = [asyncio.Queue() for _ in range(workers)]
        self._workers = [asyncio.create_task(self._work(q)) for q in self._queues]

    async def close(self) -> None:
        for w in self._workers:
            w.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    async def execute(self, request_id: str, fp: str, decide: Decide, key: str = "") -> bytes:
        if not request_id:
            raise InvalidArgument.field("request_id", "required: a client-chosen id that makes retries safe")
        if len(request_id) > 128:
            raise InvalidArgument.field("request_id", "at most 128 characters")
        # Not looked up first (as commands.execute): a retry is refused by its record's key
        # and answered from the record after the batch.
        item = _Pending(request_id, fp, decide, self._queues[hash(key or request_id) % len(self._queues)], key)
        await item.queue.put(item)
        return await item.done

    async def _work(self, queue: asyncio.Queue[_Pending]) -> None:
        while True:
            batch = [await queue.get()]
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            # A caller gone before its batch starts (its RPC cancelled: deadline, disconnect)
            # is not run, as a transaction of its own would have been rolled back; its retry
            # runs it then.
            batch = [item for item in batch if not item.done.done()]
            if not batch:
                continue
            try:
                await self._run_batch(batch)
            except asyncpg.DeadlockDetectedError:
                # Two batches wrote the same streams in opposite orders; nothing of this one
                # committed, so run its commands again.
                for item in batch:
                    await queue.put(item)
            except Exception as exc:  # the batch failed as a whole (the database, or a bug): each command did
                failure = Unavailable(f"database unavailable: {exc}") \
                    if isinstance(exc, (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)) else exc
                for item in batch:
                    _settle(item, failure)

    async def _run_batch(self, batch: list[_Pending]) -> None:
        try:
            results = await self._run_staged(batch)
        except (_Unstageable, asyncpg.IntegrityConstraintViolationError, StreamVersionConflict,
                RequestAlreadyRecorded):
            results = None
        except asyncpg.PostgresError:
            raise  # the database failed (deadlock, outage), not a command: the batch fails
        except Exception:  # a decide failed: which one, and alone, is for the careful way to say
            results = None
        if results is None:
            await self._run_careful(batch)
            self.batches["careful"] += 1
            return
        self.batches["staged"] += 1
        for item, result in results:
            _settle(item, result)

    async def _run_staged(self, batch: list[_Pending]) -> list[tuple[_Pending, bytes]] | None:
        results: list[tuple[_Pending, bytes]] = []
        streams: dict[str, _InBatch] = {}
        rows: Rows = {}
        records: list[tuple[str, str, bytes]] = []
        async with self.store.pool.acquire() as conn:
            opened = _Opened(conn)
            try:
                tx = PostgresTransaction(conn)
                # The streams the commands named as their keys: their heads in one round trip,
                # not one each (a head read now or in the decide is as stale either way: the
                # batch's append checks every head it relied on).
                keys = list({item.key for item in batch if item.key})
                heads = dict(await conn.fetch(_HEADS, keys)) if keys else {}
                for item in batch:
                    staged = _Staged(tx, opened, streams, rows, heads)
                    result = await item.decide(staged)
                    await staged.record_request(item.request_id, item.fp, result)
                    records.append(staged.record)  # type: ignore[arg-type]
                    results.append((item, result))
                appends = [(StreamAppend(sid, s.stream_type, s.base, [e for e, _ in s.events]), [m for _, m in s.events])
                           for sid, s in streams.items() if s.events]
                if appends:
                    # One statement for the whole batch: each event with its own command's
                    # metadata, every record and every kept row; alone, it commits by itself.
                    await tx.append_each(appends, records=records, rows=rows)
                else:  # nothing to append (no events, or appends of none): the records and rows alone
                    await opened.begin()
                    await tx.insert_rows(rows)
                    status = await conn.execute(_RECORD_ALL, *map(list, zip(*records, strict=True)))
                    if status != f"INSERT 0 {len(records)}":  # a retry among them: answered the careful way
                        raise RequestAlreadyRecorded(status)
                if opened.tx is not None:
                    await opened.tx.commit()
            except BaseException:
                if opened.tx is not None and not conn.is_closed():
                    try:
                        await opened.tx.rollback()
                    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                        pass  # the connection is gone, and the transaction with it; the first error stands
                raise
        return results

    async def _run_careful(self, batch: list[_Pending]) -> None:
        results: list[tuple[_Pending, bytes]] = []
        failures: list[tuple[_Pending, BaseException]] = []
        again: list[_Pending] = []
        async with self.store.pool.acquire() as conn, conn.transaction():
            tx = PostgresTransaction(conn)
            for item in batch:
                try:
                    async with conn.transaction():  # a savepoint: this command alone
                        result = await item.decide(tx)
                        await tx.record_request(item.request_id, item.fp, result)
                    results.append((item, result))
                except RequestAlreadyRecorded:
                    again.append(item)  # answered from the record once this batch is done
                except StreamVersionConflict as exc:  # decided on a stale read: retry on fresh state
                    item.attempts += 1
                    if item.attempts > self.conflict_retries:
                        failures.append((item, exc))
                    else:
                        again.append(item)
                except asyncpg.IntegrityConstraintViolationError as exc:  # the command's own write refused
                    failures.append((item, exc))
                except asyncpg.PostgresError:
                    raise  # the database failed (deadlock, outage), not the command: the batch fails
                except Exception as exc:  # a domain error: this command fails, the batch goes on
                    failures.append((item, exc))
        for item, result in results:
            _settle(item, result)
        # A retry of a committed command ends in `again` (its record taken) or fails on the
        # state it already changed: either way it is answered as the first time.
        for item, exc in [*((i, None) for i in again), *failures]:
            prior = await self.store.find_request(item.request_id)
            if prior is not None:
                try:
                    _settle(item, _replay(prior.fingerprint, item.fp, item.request_id, prior.result))
                except Exception as refused:
                    _settle(item, refused)
            elif exc is not None:
                _settle(item, exc)
            else:
                await item.queue.put(item)


def _settle(item: _Pending, outcome: bytes | BaseException) -> None:
    """Answer a caller, unless it has gone (its future cancelled with its RPC)."""
    if item.done.done():
        return
    if isinstance(outcome, BaseException):
        item.done.set_exception(outcome)
    else:
        item.done.set_result(outcome)
