"""Group commit: concurrent commands share one PostgreSQL transaction (one fsync).

A single durable commit costs a disk flush, which caps one-transaction-per-command
throughput (~1,250/s here). The committer queues concurrent commands and runs each batch in
one transaction on one connection, each command inside its own savepoint: a command that
fails (a domain error, a version conflict) rolls back to its savepoint and fails alone;
the others commit together. Callers get their result only after the batch has committed,
so an acknowledged command is durable, exactly as with a transaction of its own.

Semantics match commands.execute: idempotent by request id, conflicts retried on fresh
state (the retry goes into a later batch). Commands are routed to a worker by a key (the
stream they write), so commands on one stream queue behind each other in one worker
instead of blocking, conflicting or deadlocking across batches; a deadlock that still
happens (two streams written in opposite orders) re-runs the whole batch.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import asyncpg

from ganshou_common.commands import Decide, _replay
from ganshou_common.errors import InvalidArgument, Unavailable
from ganshou_common.eventstore.model import RequestAlreadyRecorded, StreamVersionConflict
from ganshou_common.eventstore.postgres import PostgresEventStore, PostgresTransaction


@dataclass
class _Pending:
    request_id: str
    fp: str
    decide: Decide
    queue: asyncio.Queue["_Pending"]
    done: asyncio.Future[bytes] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    attempts: int = 0


class GroupCommitter:
    def __init__(self, store: PostgresEventStore, workers: int = 4, max_batch: int = 64, conflict_retries: int = 3):
        self.store, self.max_batch, self.conflict_retries = store, max_batch, conflict_retries
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
        prior = await self.store.find_request(request_id)
        if prior is not None:
            return _replay(prior.fingerprint, fp, request_id, prior.result)
        item = _Pending(request_id, fp, decide, self._queues[hash(key or request_id) % len(self._queues)])
        await item.queue.put(item)
        return await item.done

    async def _work(self, queue: asyncio.Queue[_Pending]) -> None:
        while True:
            batch = [await queue.get()]
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                await self._run_batch(batch)
            except asyncpg.DeadlockDetectedError:
                # Two batches wrote the same streams in opposite orders; nothing of this one
                # committed, so run its commands again.
                for item in batch:
                    await queue.put(item)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(Unavailable(f"database unavailable: {exc}"))

    async def _run_batch(self, batch: list[_Pending]) -> None:
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
                except asyncpg.PostgresError:
                    raise  # the database failed (deadlock, outage), not the command: the batch fails
                except Exception as exc:  # a domain error: this command fails, the batch goes on
                    failures.append((item, exc))
        for item, result in results:
            item.done.set_result(result)
        for item, exc in failures:
            item.done.set_exception(exc)
        for item in again:
            prior = await self.store.find_request(item.request_id)
            if prior is not None:
                try:
                    item.done.set_result(_replay(prior.fingerprint, item.fp, item.request_id, prior.result))
                except Exception as exc:
                    item.done.set_exception(exc)
            else:
                await item.queue.put(item)
