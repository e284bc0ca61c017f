"""The idempotent consumer on the real broker and database: duplicates have no second
effect, poison goes to the dead-letter topic, a restarted consumer re-reading the topic
changes nothing."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError

from ganshou.common.v1 import envelope_pb2, types_pb2
from ganshou_common.consumer import IdempotentConsumer
from ganshou_common.eventstore.postgres import PostgresEventStore
from ganshou_common.migrate import migrate
from ganshou_common.testing.kafka import read_records

pytestmark = pytest.mark.integration


def envelope(stream: str, version: int, event_type: str = "ganshou.common.v1.Money", fen: int = 1) -> bytes:
    env = envelope_pb2.EventEnvelope(event_id=str(uuid.uuid4()), stream_id=stream, stream_version=version,
                                     event_type=event_type)
    env.payload.Pack(types_pb2.Money(fen=fen))
    env.payload.type_url = "type.googleapis.com/" + event_type
    return env.SerializeToString()


def fen(env: envelope_pb2.EventEnvelope) -> int:
    """The event's money; the handlers refuse a negative amount (a rejection: poison)."""
    money = types_pb2.Money()
    env.payload.Unpack(money)
    if money.fen < 0:
        raise ValueError("negative money makes no sense")
    return money.fen


async def test_duplicates_apply_once_and_poison_is_dead_lettered(pg_database: str, kafka_bootstrap: str) -> None:
    await migrate(pg_database)
    topic, dlq = f"test.{uuid.uuid4().hex[:8]}", f"test.dlq.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 2, 1), NewTopic(dlq, 1, 1)])
    await admin.close()

    store = await PostgresEventStore.connect(pg_database)
    async with store.transaction() as tx:
        await tx.conn.execute("CREATE TABLE effects (stream_id text, version bigint, fen bigint)")

    async def on_money(tx, env: envelope_pb2.EventEnvelope) -> None:
        await tx.conn.execute("INSERT INTO effects VALUES ($1, $2, $3)", env.stream_id, env.stream_version, fen(env))

    good = [envelope(f"s{i % 5}", i // 5 + 1, fen=100) for i in range(50)]
    poison = [b"\xff\x00not protobuf", envelope("s9", 1, event_type="ganshou.nowhere.v1.Bogus"),
              envelope("s8", 1, fen=-5)]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    for value in good + poison + good[:20]:  # the first 20 delivered twice
        # Keyed by stream, as the relay does, so each stream's versions arrive in order.
        stream = envelope_pb2.EventEnvelope.FromString(value).stream_id if value in good else "poison"
        await producer.send(topic, value, key=stream.encode())
    await producer.stop()

    async def consume(name: str, expect_seen: int) -> None:
        consumer = IdempotentConsumer(name, store, kafka_bootstrap, [topic], {"ganshou.common.v1.Money": on_money}, dlq)
        task = asyncio.create_task(consumer.run())
        async with asyncio.timeout(30):
            while await store.pool.fetchval("SELECT count(*) FROM effects") < expect_seen or \
                    len(await dead_letter_reasons(kafka_bootstrap, dlq)) < 3:
                await asyncio.sleep(0.2)
        await asyncio.sleep(1)  # let any wrongful second application show itself
        consumer.stop()
        await task

    await consume("reactor", 50)
    # The same consumer, another Kafka group: it reads everything again, applies nothing.
    consumer = IdempotentConsumer("reactor", store, kafka_bootstrap, [topic], {"ganshou.common.v1.Money": on_money}, dlq)
    for value in good:
        assert await consumer.apply(value) == "duplicate"

    rows = await store.pool.fetch("SELECT stream_id, version FROM effects")
    assert len(rows) == 50 and len({(r["stream_id"], r["version"]) for r in rows}) == 50
    reasons = await dead_letter_reasons(kafka_bootstrap, dlq)
    assert sorted(reasons) == ["rejected_by_handler", "undecodable", "unknown_event_type"]
    await store.close()


async def dead_letter_reasons(bootstrap: str, topic: str) -> list[str]:
    return [dict(r.headers)["reason"].decode() for r in await read_records(bootstrap, topic)]


async def test_a_commit_refused_after_the_group_moved_on_does_not_stop_the_consumer(
        pg_database: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A worker paused past its session (a starved core) finds its group rebalanced: aiokafka
    # refuses the commit (CommitFailedError). It used to end the worker's run.
    await migrate(pg_database)
    topic = f"test.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()
    store = await PostgresEventStore.connect(pg_database)
    await store.pool.execute("CREATE TABLE seen (stream_id text, version bigint)")

    async def on_money(tx, env: envelope_pb2.EventEnvelope) -> None:
        await tx.conn.execute("INSERT INTO seen VALUES ($1, $2)", env.stream_id, env.stream_version)

    real_commit, refused = AIOKafkaConsumer.commit, []

    async def refuse_the_first(self, *args, **kwargs):
        if not refused:
            refused.append(True)
            raise CommitFailedError("the group has already rebalanced")
        return await real_commit(self, *args, **kwargs)

    monkeypatch.setattr(AIOKafkaConsumer, "commit", refuse_the_first)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    consumer = IdempotentConsumer("paused", store, kafka_bootstrap, [topic], {"ganshou.common.v1.Money": on_money},
                                  f"{topic}.dlq")
    task = asyncio.create_task(consumer.run())
    try:
        for version in range(1, 21):
            await producer.send_and_wait(topic, envelope("s1", version), key=b"s1")
            if version == 10:  # the first batch (its commit refused) before the rest
                async with asyncio.timeout(30):
                    while not refused:
                        await asyncio.sleep(0.1)
        async with asyncio.timeout(30):
            while await store.pool.fetchval("SELECT count(*) FROM seen") < 20:
                assert not task.done(), task.exception()
                await asyncio.sleep(0.1)
        assert refused and not task.done()
        assert await store.pool.fetchval("SELECT count(DISTINCT version) FROM seen") == 20
    finally:
        consumer.stop()
        await producer.stop()
        await task
        await store.close()


class _CountingStore(PostgresEventStore):
    """Counts the transactions the consumer opens."""

    commands = 0

    def command(self):
        self.commands += 1
        return super().command()


async def test_a_fetch_is_applied_in_one_transaction_and_one_failure_leaves_none_of_it(pg_database: str) -> None:
    await migrate(pg_database)
    store = _CountingStore((await PostgresEventStore.connect(pg_database)).pool)
    await store.pool.execute("CREATE TABLE effects (stream_id text, version bigint, fen bigint)")

    async def on_money(tx, env: envelope_pb2.EventEnvelope) -> None:
        amount = fen(env)
        # What an earlier event of the same transaction wrote is seen by the next.
        before = await tx.conn.fetchval("SELECT count(*) FROM effects WHERE stream_id = $1", env.stream_id)
        assert before == env.stream_version - 1
        await tx.conn.execute("INSERT INTO effects VALUES ($1, $2, $3)", env.stream_id, env.stream_version, amount)

    consumer = IdempotentConsumer("batcher", store, "unused:9092", [], {"ganshou.common.v1.Money": on_money}, "dlq")
    first = [envelope("b1", v) for v in (1, 2, 3)] + [envelope("b2", 1, event_type="ganshou.common.v1.Actor")]
    assert await consumer.apply_batch(first) == ["applied", "applied", "applied", "ignored"]
    assert store.commands == 1
    # Seen again with a new one: the seen ones are duplicates, in the same one transaction.
    assert await consumer.apply_batch(first[:3] + [envelope("b1", 4)]) == ["duplicate"] * 3 + ["applied"]
    assert store.commands == 2
    # One refused among them: nothing of the batch is written; event by event, the good ones apply.
    mixed = [envelope("b3", 1), envelope("b3", 2, fen=-5), envelope("b4", 1)]
    assert await consumer.apply_batch(mixed) is None
    assert await store.pool.fetchval("SELECT count(*) FROM effects WHERE stream_id IN ('b3', 'b4')") == 0
    assert await consumer.apply(mixed[0]) == "applied"
    assert await consumer.apply(mixed[2]) == "applied"
    # Undecodable bytes among them: the same, before any transaction opens.
    assert await consumer.apply_batch([envelope("b5", 1), b"\xff\x00not protobuf"]) is None
    assert store.commands == 5
    assert await store.pool.fetchval("SELECT count(*) FROM effects") == 6
    await store.close()
