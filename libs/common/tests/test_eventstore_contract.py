"""One contract for every event store: in memory and on PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from ganshou_common.commands import execute, fingerprint
from ganshou_common.errors import FailedPrecondition, InvalidArgument, RequestIdReused
from ganshou_common.eventstore import (
    ANY_VERSION,
    NO_STREAM,
    Metadata,
    NewEvent,
    StreamAppend,
    StreamVersionConflict,
)


def ev(n: int, community: str = "c1") -> NewEvent:
    return NewEvent("ganshou.test.v1.Happened", f"payload-{n}".encode(), community_id=community)


async def append(store, stream: str, expected: int, *events: NewEvent, meta: Metadata = Metadata()):
    async with store.transaction() as tx:
        return await tx.append(StreamAppend(stream, "thing", expected, list(events)), meta)


async def test_appended_events_read_back_in_version_order(store) -> None:
    await append(store, "s1", NO_STREAM, ev(1), ev(2), meta=Metadata("corr", "cause", "alice", "town_admin"))
    await append(store, "s1", 2, ev(3))
    events = await store.read_stream("s1")
    assert [e.version for e in events] == [1, 2, 3]
    assert [e.payload for e in events] == [b"payload-1", b"payload-2", b"payload-3"]
    assert events[0].metadata == Metadata("corr", "cause", "alice", "town_admin")
    assert events[0].community_id == "c1" and events[0].stream_type == "thing"
    assert [e.version for e in await store.read_stream("s1", after_version=1)] == [2, 3]
    assert await store.read_stream("nobody") == []


async def test_stale_expected_version_conflicts_and_writes_nothing(store) -> None:
    await append(store, "s1", NO_STREAM, ev(1))
    with pytest.raises(StreamVersionConflict):
        await append(store, "s1", NO_STREAM, ev(2))
    with pytest.raises(StreamVersionConflict):
        await append(store, "s1", 5, ev(2))  # ahead of the stream: no gaps either
    assert [e.version for e in await store.read_stream("s1")] == [1]


async def test_a_transaction_over_several_streams_is_all_or_nothing(store) -> None:
    await append(store, "b", NO_STREAM, ev(1))
    with pytest.raises(StreamVersionConflict):
        async with store.transaction() as tx:
            await tx.append(StreamAppend("a", "thing", NO_STREAM, [ev(1)]))
            await tx.append(StreamAppend("b", "thing", NO_STREAM, [ev(2)]))
    assert await store.read_stream("a") == []
    assert await store.outbox_backlog() == 1


async def test_any_version_appends_at_the_head(store) -> None:
    await append(store, "s", ANY_VERSION, ev(1))
    await append(store, "s", ANY_VERSION, ev(2))
    assert [e.version for e in await store.read_stream("s")] == [1, 2]


async def test_read_all_follows_global_position_and_event_ids_are_unique(store) -> None:
    for i in range(5):
        await append(store, f"s{i % 2}", ANY_VERSION, ev(i))
    everything = await store.read_all()
    positions = [e.position for e in everything]
    assert positions == sorted(positions) and len(everything) == 5
    assert len({e.event_id for e in everything}) == 5
    assert [e.position for e in await store.read_all(after_position=positions[1], limit=2)] == positions[2:4]
    assert await store.outbox_backlog() == 5


async def test_concurrent_writers_of_one_stream_never_share_a_version(store) -> None:
    results = await asyncio.gather(
        *(append(store, "hot", NO_STREAM, ev(i)) for i in range(8)), return_exceptions=True
    )
    assert sum(1 for r in results if not isinstance(r, Exception)) == 1
    assert all(isinstance(r, StreamVersionConflict) for r in results if isinstance(r, Exception))
    assert len(await store.read_stream("hot")) == 1


async def test_a_retried_request_returns_the_first_result_and_appends_nothing(store) -> None:
    calls = 0

    async def decide(tx) -> bytes:
        nonlocal calls
        calls += 1
        stored = await tx.append(StreamAppend("order-1", "order", ANY_VERSION, [ev(calls)]))
        return f"v{stored[-1].version}".encode()

    fp = fingerprint("PlaceOrder", b"body")
    assert await execute(store, "req-1", fp, decide) == b"v1"
    assert await execute(store, "req-1", fp, decide) == b"v1"
    assert len(await store.read_stream("order-1")) == 1  # the retry's decision was rolled back

    with pytest.raises(RequestIdReused):
        await execute(store, "req-1", fingerprint("PlaceOrder", b"other body"), decide)
    with pytest.raises(InvalidArgument) as err:
        await execute(store, "", fp, decide)
    assert err.value.violations[0].field == "request_id"


@pytest.mark.parametrize("refusal", [FailedPrecondition("already resolved"),
                                     RuntimeError("duplicate key value violates unique constraint")])
async def test_a_retry_whose_decision_no_longer_holds_answers_as_the_first_time(store, refusal) -> None:
    """The first attempt moved the stream on, so deciding again fails (a case already
    resolved; an id the command derives already in use): the retry still gets the first
    answer, not the failure."""
    async def decide(tx) -> bytes:
        if await tx.stream_version("case-9") > 0:
            raise refusal
        await tx.append(StreamAppend("case-9", "case", NO_STREAM, [ev(1)]))
        return b"resolved"

    fp = fingerprint("ResolveCase", b"case-9")
    assert await execute(store, "req-9", fp, decide) == b"resolved"
    assert await execute(store, "req-9", fp, decide) == b"resolved"
    with pytest.raises(type(refusal)):  # another request is refused as before
        await execute(store, "req-10", fp, decide)


async def test_concurrent_retries_of_one_request_append_once(store) -> None:
    async def decide(tx) -> bytes:
        await tx.append(StreamAppend("order-2", "order", ANY_VERSION, [ev(1)]))
        await asyncio.sleep(0.01)
        return b"done"

    fp = fingerprint("PlaceOrder", b"x")
    results = await asyncio.gather(*(execute(store, "req-2", fp, decide) for _ in range(5)))
    assert results == [b"done"] * 5
    assert len(await store.read_stream("order-2")) == 1


async def test_a_command_that_fails_leaves_nothing(store) -> None:
    async def decide(tx) -> bytes:
        await tx.append(StreamAppend("x", "thing", NO_STREAM, [ev(1)]))
        raise InvalidArgument.field("name", "required")

    with pytest.raises(InvalidArgument):
        await execute(store, "req-3", "fp", decide)
    assert await store.read_stream("x") == [] and await store.find_request("req-3") is None


async def test_a_claimed_event_is_not_claimed_again(store) -> None:
    async with store.transaction() as tx:
        assert await tx.claim("casework", "demand-1", 1)
    async with store.transaction() as tx:
        assert not await tx.claim("casework", "demand-1", 1)
        assert await tx.claim("casework", "demand-1", 2)
        assert await tx.claim("other-consumer", "demand-1", 1)
    # A claim in a transaction that fails is not kept.
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            assert await tx.claim("casework", "demand-2", 1)
            raise RuntimeError("effect failed")
    async with store.transaction() as tx:
        assert await tx.claim("casework", "demand-2", 1)



async def test_append_many_is_all_or_nothing_and_positions_follow_versions(store) -> None:
    await append(store, "m2", NO_STREAM, ev(0))
    async with store.transaction() as tx:
        stored = await tx.append_many([
            StreamAppend("m1", "thing", NO_STREAM, [ev(1), ev(2), ev(3)]),
            StreamAppend("m2", "thing", 1, [ev(4)]),
        ])
    assert [(e.stream_id, e.version) for e in stored if e.stream_id == "m1"] == [("m1", 1), ("m1", 2), ("m1", 3)]
    for stream in ("m1", "m2"):
        events = await store.read_stream(stream)
        assert [e.position for e in events] == sorted(e.position for e in events)
    with pytest.raises(StreamVersionConflict) as conflict:
        async with store.transaction() as tx:
            await tx.append_many([StreamAppend("m3", "thing", NO_STREAM, [ev(5)]),
                                  StreamAppend("m2", "thing", 1, [ev(6)])])
    assert conflict.value.stream_id == "m2"
    assert await store.read_stream("m3") == []


def test_the_relays_envelope_equals_the_codecs() -> None:
    """The relay builds envelopes from raw rows for speed; they must be the codec's, byte for byte."""
    import uuid
    from datetime import UTC, datetime

    from ganshou.common.v1 import envelope_pb2
    from ganshou_common.codec import to_envelope
    from ganshou_common.eventstore import StoredEvent
    from ganshou_common.outbox.relay import envelope_bytes

    at = datetime(2026, 11, 27, 9, 30, 15, 123456, tzinfo=UTC)
    event = StoredEvent(7, uuid.uuid4(), "case-1", "case", 3, "ganshou.casework.v1.CaseResolved", b"\x0a\x01x", "c1",
                        at, at, Metadata("corr", "cause", "cadre-1", "community_cadre"))
    us = int(at.timestamp() * 1_000_000)
    row = [7, str(event.event_id), "case-1", "case", 3, event.event_type, event.payload, "c1", us, us,
           "corr", "cause", "cadre-1", "community_cadre"]
    assert envelope_pb2.EventEnvelope.FromString(envelope_bytes(row, "casework")) == to_envelope(event, "casework")


# ---- a command's transaction (store.command(), what commands.execute runs in) -------------

async def test_a_command_sees_its_own_appends_and_they_land_in_order(store) -> None:
    async with store.command() as tx:
        first = await tx.append(StreamAppend("c1", "thing", ANY_VERSION, [ev(1)]))
        assert await tx.stream_version("c1") == 1
        second = await tx.append(StreamAppend("c1", "thing", 1, [ev(2), ev(3)]))
        assert [e.version for e in await tx.read_stream("c1")] == [1, 2, 3]
        await tx.append(StreamAppend("c2", "thing", NO_STREAM, [ev(4)]))
        await tx.record_request("req-c", "fp", b"ok")
    assert [e.version for e in first + second] == [1, 2, 3]
    events = await store.read_stream("c1")
    assert [(e.version, e.payload) for e in events] == [(1, b"payload-1"), (2, b"payload-2"), (3, b"payload-3")]
    assert [e.position for e in events] == sorted(e.position for e in events)
    assert len(await store.read_stream("c2")) == 1
    assert (await store.find_request("req-c")).result == b"ok"


async def test_concurrent_commands_on_one_stream_each_get_their_own_version(store) -> None:
    async def decide(tx) -> bytes:
        stored = await tx.append(StreamAppend("hot-c", "thing", ANY_VERSION, [ev(0)]))
        await asyncio.sleep(0)  # let the others read the same head
        return str(stored[-1].version).encode()

    results = await asyncio.gather(*(execute(store, f"r{i}", "fp", decide) for i in range(4)))
    assert sorted(results) == [b"1", b"2", b"3", b"4"]
    assert [e.version for e in await store.read_stream("hot-c")] == [1, 2, 3, 4]


async def test_a_command_failing_after_its_appends_writes_nothing(store) -> None:
    async def decide(tx) -> bytes:
        await tx.append(StreamAppend("f1", "thing", NO_STREAM, [ev(1)]))
        raise FailedPrecondition("changed its mind")

    with pytest.raises(FailedPrecondition):
        await execute(store, "req-f", "fp", decide)
    assert await store.read_stream("f1") == []
    assert await store.find_request("req-f") is None
