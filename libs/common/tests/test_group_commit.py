"""Group commit on PostgreSQL: many commands, one transaction, each failing alone."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import pytest

from ganshou_common.commands import fingerprint
from ganshou_common.errors import InvalidArgument, RequestIdReused
from ganshou_common.eventstore import ANY_VERSION, NO_STREAM, NewEvent, StreamAppend
from ganshou_common.group_commit import GroupCommitter
from ganshou_common.testing.fixtures import migrated_store

pytestmark = pytest.mark.integration


def appender(stream: str, expected: int = ANY_VERSION, fail: bool = False):
    async def decide(tx) -> bytes:
        stored = await tx.append(StreamAppend(stream, "thing", expected, [NewEvent("ganshou.test.v1.Happened", b"x")]))
        if fail:
            raise InvalidArgument.field("name", "required")
        return str(stored[-1].version).encode()

    return decide


async def test_concurrent_commands_commit_together_and_a_bad_one_fails_alone(pg_port: int) -> None:
    async with migrated_store(pg_port) as store:
        committer = GroupCommitter(store, workers=2)
        try:
            calls = [committer.execute(f"r{i}", fingerprint("Do", str(i).encode()), appender(f"s{i % 7}"), key=f"s{i % 7}")
                     for i in range(200)]
            calls.append(committer.execute("bad", "fp-bad", appender("s-bad", fail=True)))
            results = await asyncio.gather(*calls, return_exceptions=True)
            assert isinstance(results[-1], InvalidArgument)
            assert all(isinstance(r, bytes) for r in results[:-1]), [r for r in results if not isinstance(r, bytes)][:3]
            assert await store.read_stream("s-bad") == []
            for s in range(7):
                versions = [e.version for e in await store.read_stream(f"s{s}")]
                assert versions == list(range(1, len(versions) + 1))
            assert sum([len(await store.read_stream(f"s{s}")) for s in range(7)]) == 200
            assert await store.outbox_backlog() == 200

            # Retries answer from the record; a reused id with other content is refused.
            assert await committer.execute("r3", fingerprint("Do", b"3"), appender("s3")) == results[3]
            with pytest.raises(RequestIdReused):
                await committer.execute("r3", fingerprint("Do", b"other"), appender("s3"))
            # An explicit stale version conflicts (after retries) without touching the stream.
            with pytest.raises(Exception, match="expected version"):
                await committer.execute("stale", "fp", appender("s0", expected=NO_STREAM))
        finally:
            await committer.close()


def reader_then_appender(stream: str):
    """Reads its stream first, then appends at the version it read (as an aggregate does)."""
    async def decide(tx) -> bytes:
        events = await tx.read_stream(stream)
        stored = await tx.append(StreamAppend(stream, "thing", len(events), [NewEvent("ganshou.test.v1.Happened", b"x")]))
        return str(stored[-1].version).encode()

    return decide


async def test_batches_are_written_whole_and_each_command_sees_its_versions(pg_port: int) -> None:
    async with migrated_store(pg_port) as store:
        committer = GroupCommitter(store, workers=2)
        try:
            # Appends to five busy streams, and commands that read a stream of their own first.
            streams = [f"t{i % 5}" if i % 4 else f"own{i}" for i in range(300)]
            deciders = [appender(s) if i % 4 else reader_then_appender(s) for i, s in enumerate(streams)]
            calls = [committer.execute(f"q{i}", "fp", d, key=streams[i]) for i, d in enumerate(deciders)]
            calls.append(committer.execute("q7", "fp", deciders[7], key=streams[7]))  # the same request twice at once
            results = await asyncio.gather(*calls)
            assert results[-1] == results[7]
            assert committer.batches["staged"] > 0  # one append and one record insert for the whole batch
            for s in set(streams):
                versions = [e.version for e in await store.read_stream(s)]
                # Each command was told the version its event has.
                assert sorted(int(results[i]) for i in range(300) if streams[i] == s) == versions
                assert versions == list(range(1, len(versions) + 1))
            assert await store.outbox_backlog() == 300
            assert [(await store.find_request(f"q{i}")).result for i in range(300)] == results[:300]

            # A command that reads a stream the batch already appended to cannot see those
            # events in the database: its batch is written the careful way, with the same outcome.
            before = committer.batches["careful"]
            results = await asyncio.gather(*[committer.execute(f"w{i}", "fp", appender("w") if i % 2 else
                                                               reader_then_appender("w"), key="w") for i in range(20)])
            assert committer.batches["careful"] > before
            assert sorted(int(r) for r in results) == [e.version for e in await store.read_stream("w")] == list(range(1, 21))
        finally:
            await committer.close()


def slow_appender(stream: str, gate: asyncio.Event):
    async def decide(tx) -> bytes:
        await gate.wait()
        await tx.append(StreamAppend(stream, "thing", ANY_VERSION, [NewEvent("ganshou.test.v1.Happened", b"x")]))
        return b"ok"

    return decide


async def test_callers_that_go_away_leave_the_committer_working(pg_port: int) -> None:
    # An RPC cancelled (deadline, client gone) cancels its caller while the command waits in
    # a queue or runs in a batch: the committer must answer everyone else, then and after.
    async with migrated_store(pg_port) as store:
        committer = GroupCommitter(store, workers=1)
        try:
            gate = asyncio.Event()
            running = asyncio.create_task(committer.execute("first", "fp", slow_appender("c0", gate)))
            await asyncio.sleep(0.1)  # its batch is running, held by the gate
            queued = [asyncio.create_task(committer.execute(f"gone{i}", "fp", appender(f"c{i}"))) for i in range(5)]
            await asyncio.sleep(0.1)
            for t in [running, *queued]:
                t.cancel()
            gate.set()
            results = await asyncio.wait_for(asyncio.gather(*(committer.execute(f"after{i}", "fp", appender(f"d{i}"))
                                                              for i in range(10))), 10)
            assert results == [b"1"] * 10
            # The queued ones never ran; the running one's batch committed (as a transaction
            # that commits while its caller goes would).
            assert [await store.find_request(f"gone{i}") for i in range(5)] == [None] * 5
        finally:
            await committer.close()


@contextlib.asynccontextmanager
async def rows_committer(pg_port: int):
    """A migrated store with a `later_rows` read model, and a one-worker committer on it."""
    async with migrated_store(pg_port) as store:
        await store.pool.execute("CREATE TABLE later_rows (id text PRIMARY KEY, stream text NOT NULL)")
        committer = GroupCommitter(store, workers=1)
        try:
            yield store, committer
        finally:
            await committer.close()


def with_row(row_id: str, stream: str):
    async def decide(tx) -> bytes:
        await tx.insert_later("later_rows", (row_id, stream))
        await tx.append(StreamAppend(stream, "thing", NO_STREAM, [NewEvent("ganshou.test.v1.Happened", b"x")]))
        return row_id.encode()

    return decide


async def test_writes_kept_for_the_batch_end_land_with_their_command_or_fail_alone(pg_port: int) -> None:
    async with rows_committer(pg_port) as (store, committer):
        results = await asyncio.gather(*(committer.execute(f"k{i}", "fp", with_row(f"row{i}", f"n{i}"))
                                         for i in range(50)))
        assert results == [f"row{i}".encode() for i in range(50)]
        assert committer.batches["staged"] > 0 and committer.batches["careful"] == 0
        rows = await store.pool.fetch("SELECT id, stream FROM later_rows ORDER BY id")
        assert sorted((r["id"], r["stream"]) for r in rows) == sorted((f"row{i}", f"n{i}") for i in range(50))
        assert await store.outbox_backlog() == 50

        # A row whose key is taken fails its own command only: its events are not appended.
        results = await asyncio.gather(*(committer.execute(f"m{i}", "fp", with_row("row7" if i == 3 else f"new{i}",
                                                                                f"o{i}")) for i in range(20)),
                                       return_exceptions=True)
        assert isinstance(results[3], asyncpg.UniqueViolationError)
        assert [r for i, r in enumerate(results) if i != 3] == [f"new{i}".encode() for i in range(20) if i != 3]
        assert await store.read_stream("o3") == [] and len(await store.read_stream("o4")) == 1


async def test_a_batch_reads_its_keys_heads_at_once_and_stays_staged(pg_port: int) -> None:
    async with migrated_store(pg_port) as store:
        committer = GroupCommitter(store, workers=1)
        try:
            for s in range(5):  # streams with a history: a head of 0 would be refused
                async with store.transaction() as tx:
                    await tx.append(StreamAppend(f"h{s}", "thing", NO_STREAM,
                                                 [NewEvent("ganshou.test.v1.Happened", b"x")] * 3))
            results = await asyncio.gather(*(committer.execute(f"p{i}", "fp", appender(f"h{i % 5}"), key=f"h{i % 5}")
                                             for i in range(100)))
            assert committer.batches["careful"] == 0 and committer.batches["staged"] > 0
            for s in range(5):
                assert sorted(int(results[i]) for i in range(100) if i % 5 == s) == list(range(4, 24))
        finally:
            await committer.close()


async def test_a_batch_that_runs_no_statement_of_its_own_is_one_statement_without_a_transaction(
        pg_port: int, monkeypatch) -> None:
    import ganshou_common.group_commit as gc

    opened: list[int] = []
    original = gc._Opened.begin

    async def counting(self) -> None:
        if self.tx is None:
            opened.append(1)
        await original(self)

    monkeypatch.setattr(gc._Opened, "begin", counting)

    def reading(row_id: str, stream: str):
        async def decide(tx) -> bytes:
            await tx.conn.fetchval("SELECT 1")  # a read model's read: the batch's transaction opens
            return await with_row(row_id, stream)(tx)
        return decide

    async with rows_committer(pg_port) as (store, committer):
        assert await asyncio.gather(*(committer.execute(f"q{i}", "fp", with_row(f"q{i}", f"q{i}"))
                                      for i in range(10))) == [f"q{i}".encode() for i in range(10)]
        assert opened == [] and committer.batches["careful"] == 0
        assert await committer.execute("r0", "fp", reading("r0", "r0")) == b"r0"
        assert opened == [1]
        assert await store.pool.fetchval("SELECT count(*) FROM later_rows") == 11
        assert await store.pool.fetchval("SELECT count(*) FROM requests") == 11


async def test_a_batch_whose_appends_hold_no_event_still_records_its_commands_and_rows(pg_port: int) -> None:
    def empty_append(row_id: str):
        async def decide(tx) -> bytes:
            await tx.insert_later("later_rows", (row_id, "none"))
            await tx.append(StreamAppend(f"e-{row_id}", "thing", NO_STREAM, []))
            return row_id.encode()
        return decide

    async with rows_committer(pg_port) as (store, committer):
        assert await asyncio.gather(*(committer.execute(f"e{i}", "fp", empty_append(f"e{i}"))
                                      for i in range(5))) == [f"e{i}".encode() for i in range(5)]
        assert committer.batches["careful"] == 0
        assert await store.pool.fetchval("SELECT count(*) FROM later_rows") == 5
        assert [(await store.find_request(f"e{i}")).result for i in range(5)] == [f"e{i}".encode() for i in range(5)]


async def test_a_decides_own_statement_in_a_batch_sees_the_rows_kept_before_it(pg_port: int) -> None:
    def kept_then_updated(row_id: str):
        async def decide(tx) -> bytes:
            await tx.insert_later("later_rows", (row_id, "kept"))
            await tx.conn.execute("UPDATE later_rows SET stream = 'updated' WHERE id = $1", row_id)
            await tx.append(StreamAppend(f"u-{row_id}", "thing", NO_STREAM, [NewEvent("ganshou.test.v1.Happened", b"x")]))
            return row_id.encode()
        return decide

    async with rows_committer(pg_port) as (store, committer):
        assert await asyncio.gather(*(committer.execute(f"u{i}", "fp", kept_then_updated(f"u{i}"))
                                      for i in range(6))) == [f"u{i}".encode() for i in range(6)]
        assert committer.batches["careful"] == 0
        assert await store.pool.fetchval("SELECT array_agg(DISTINCT stream) FROM later_rows") == ["updated"]
        assert await store.pool.fetchval("SELECT count(*) FROM later_rows") == 6
