"""A command's transaction on PostgreSQL (PostgresCommand): opened only when the command
touches more than its events, its appends written with its request record."""

from __future__ import annotations

import asyncio

import pytest

from ganshou_common.commands import execute
from ganshou_common.eventstore import ANY_VERSION, NO_STREAM, NewEvent, RequestAlreadyRecorded, StreamAppend
from ganshou_common.eventstore.postgres import PostgresCommand
from ganshou_common.testing.fixtures import migrated_store

pytestmark = pytest.mark.integration


def ev(n: int) -> NewEvent:
    return NewEvent("ganshou.test.v1.Happened", f"payload-{n}".encode())


@pytest.fixture
async def store(pg_port: int):
    async with migrated_store(pg_port) as store:
        await store.pool.execute("CREATE TABLE notes (id text PRIMARY KEY, body text)")
        yield store


@pytest.fixture
def begins(monkeypatch) -> list[int]:
    """How many times a command opened its transaction."""
    opened: list[int] = []
    original = PostgresCommand._begin

    async def counting(self) -> None:
        if self._tx is None:
            opened.append(1)
        await original(self)

    monkeypatch.setattr(PostgresCommand, "_begin", counting)
    return opened


async def test_an_append_only_command_is_one_statement_and_a_read_model_opens_a_transaction(store, begins) -> None:
    async def append_only(tx) -> bytes:
        await tx.append(StreamAppend("s1", "thing", NO_STREAM, [ev(1)]))
        return b"ok"

    async def with_note(tx) -> bytes:
        await tx.append(StreamAppend("s2", "thing", NO_STREAM, [ev(2)]))
        await tx.conn.execute("INSERT INTO notes VALUES ('n2', 'kept with its event')")
        return b"ok"

    assert await execute(store, "r1", "fp", append_only) == b"ok"
    assert begins == []
    assert await execute(store, "r2", "fp", with_note) == b"ok"
    assert begins == [1]
    assert [len(await store.read_stream(s)) for s in ("s1", "s2")] == [1, 1]
    assert await store.pool.fetchval("SELECT count(*) FROM requests") == 2
    assert await store.pool.fetchval("SELECT count(*) FROM outbox") == 2


async def test_a_retry_rolls_back_its_read_model_writes_with_its_events(store) -> None:
    calls = 0

    async def decide(tx) -> bytes:
        nonlocal calls
        calls += 1
        await tx.conn.execute("INSERT INTO notes VALUES ($1, 'x')", f"n{calls}")
        await tx.append(StreamAppend("s3", "thing", ANY_VERSION, [ev(calls)]))
        return b"first" if calls == 1 else b"second"

    assert await execute(store, "r3", "fp", decide) == b"first"
    assert await execute(store, "r3", "fp", decide) == b"first"  # the record's key refused the retry
    assert calls == 2
    assert await store.pool.fetchval("SELECT count(*) FROM notes") == 1
    assert len(await store.read_stream("s3")) == 1


async def test_a_head_moved_between_read_and_write_is_decided_again(store) -> None:
    attempts = 0

    async def decide(tx) -> bytes:
        nonlocal attempts
        attempts += 1
        stored = await tx.append(StreamAppend("s4", "thing", ANY_VERSION, [ev(attempts)]))
        if attempts == 1:  # another writer gets in after this command read the head
            async with store.transaction() as other:
                await other.append(StreamAppend("s4", "thing", ANY_VERSION, [ev(99)]))
        return str(stored[-1].version).encode()

    assert await execute(store, "r4", "fp", decide) == b"2"
    assert attempts == 2
    assert [e.payload for e in await store.read_stream("s4")] == [b"payload-99", b"payload-2"]


async def test_nothing_may_follow_the_statement_that_wrote_the_command(store) -> None:
    async with store.command() as tx:
        await tx.append(StreamAppend("s5", "thing", NO_STREAM, [ev(1)]))
        await tx.record_request("r5", "fp", b"ok")
        with pytest.raises(RuntimeError, match="already written"):
            await tx.conn.execute("INSERT INTO notes VALUES ('late', 'x')")
        with pytest.raises(TypeError):
            tx.conn.transaction()
    assert await store.pool.fetchval("SELECT count(*) FROM notes") == 0


async def test_a_command_cancelled_midway_leaves_nothing(store) -> None:
    started = asyncio.Event()

    async def decide(tx) -> bytes:
        await tx.conn.execute("INSERT INTO notes VALUES ('n6', 'x')")
        await tx.append(StreamAppend("s6", "thing", NO_STREAM, [ev(1)]))
        started.set()
        await asyncio.sleep(30)
        return b"never"

    task = asyncio.create_task(execute(store, "r6", "fp", decide))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await store.pool.fetchval("SELECT count(*) FROM notes") == 0
    assert await store.read_stream("s6") == []
    assert await store.find_request("r6") is None
    # The connection went back to the pool clean: the next command commits.
    async with store.command() as tx:
        await tx.conn.execute("INSERT INTO notes VALUES ('n7', 'x')")
        await tx.record_request("r7", "fp", b"ok")
    assert await store.pool.fetchval("SELECT count(*) FROM notes") == 1


async def test_a_taken_request_id_fails_the_one_statement_whole(store) -> None:
    await store.pool.execute("INSERT INTO requests (request_id, fingerprint, result) VALUES ('r8', 'fp', 'old')")
    with pytest.raises(RequestAlreadyRecorded):
        async with store.command() as tx:
            await tx.append(StreamAppend("s8", "thing", NO_STREAM, [ev(1)]))
            await tx.record_request("r8", "fp", b"new")
    assert await store.read_stream("s8") == []


async def test_a_bulk_append_is_written_at_once_and_commits_with_the_rest(store) -> None:
    streams = [StreamAppend(f"bulk-{i}", "thing", NO_STREAM, [ev(i)]) for i in range(100)]
    async with store.command() as tx:
        await tx.append(StreamAppend("small", "thing", NO_STREAM, [ev(0)]))
        stored = await tx.append_many(streams)
        assert all(e.position > 0 for e in stored)  # written: their positions are known
        assert await tx.stream_version("small") == 1
        await tx.record_request("r9", "fp", b"ok")
    assert len(await store.read_all(limit=500)) == 101
    with pytest.raises(RequestAlreadyRecorded):  # all or nothing, the bulk part too
        async with store.command() as tx:
            await tx.append_many([StreamAppend(f"bulk2-{i}", "thing", NO_STREAM, [ev(i)]) for i in range(100)])
            await tx.record_request("r9", "fp", b"again")
    assert await store.read_stream("bulk2-0") == []


async def test_kept_rows_are_written_with_the_events_by_the_one_statement_or_not_at_all(store, begins) -> None:
    def with_rows(note: str, stream: str, events: int):
        async def decide(tx) -> bytes:
            await tx.insert_later("notes", (note, "kept"))
            await tx.insert_later("notes", (note + "-b", "kept too"))
            await tx.append(StreamAppend(stream, "thing", NO_STREAM, [ev(n) for n in range(events)]))
            return note.encode()
        return decide

    assert await execute(store, "k1", "fp", with_rows("a", "s-a", 1)) == b"a"  # one-event form
    assert await execute(store, "k2", "fp", with_rows("b", "s-b", 3)) == b"b"  # many-event form
    assert begins == []  # the rows went with the events: no transaction opened
    assert sorted(await store.pool.fetchval("SELECT array_agg(id) FROM notes")) == ["a", "a-b", "b", "b-b"]
    # A row refused (its key taken) fails the command whole: no events, no record.
    with pytest.raises(Exception, match="notes_pkey"):
        await execute(store, "k3", "fp", with_rows("a", "s-c", 1))
    assert await store.read_stream("s-c") == []
    assert await store.find_request("k3") is None


async def test_kept_rows_without_events_are_written_in_the_transaction(store, begins) -> None:
    async def rows_only(tx) -> bytes:
        await tx.insert_later("notes", ("alone", "no event"))
        return b"ok"

    assert await execute(store, "k4", "fp", rows_only) == b"ok"
    assert begins == [1]
    assert await store.pool.fetchval("SELECT body FROM notes WHERE id = 'alone'") == "no event"
    assert (await store.find_request("k4")).result == b"ok"


async def test_a_statement_of_the_decide_sees_the_rows_kept_before_it(store) -> None:
    async def decide(tx) -> bytes:
        await tx.insert_later("notes", ("upd", "as kept"))
        await tx.conn.execute("UPDATE notes SET body = 'updated' WHERE id = 'upd'")  # writes the kept row first
        await tx.append(StreamAppend("s-upd", "thing", NO_STREAM, [ev(1)]))
        return b"ok"

    assert await execute(store, "k5", "fp", decide) == b"ok"
    assert await store.pool.fetchval("SELECT body FROM notes WHERE id = 'upd'") == "updated"
    assert len(await store.read_stream("s-upd")) == 1
