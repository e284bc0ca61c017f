"""The real local stack answers: protobuf envelopes through Kafka, rows through PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from ganshou_common.testing.kafka import create_topics
from ganshou.common.v1 import envelope_pb2, types_pb2

pytestmark = pytest.mark.integration


def make_envelope(stream_id: str, version: int, fen: int) -> envelope_pb2.EventEnvelope:
    env = envelope_pb2.EventEnvelope(
        event_id=str(uuid.uuid4()),
        stream_id=stream_id,
        stream_type="test",
        stream_version=version,
        community_id="c-01",
        event_type="ganshou.common.v1.Money",
        source="test",
    )
    env.occurred_at.GetCurrentTime()
    env.payload.Pack(types_pb2.Money(fen=fen))
    return env


async def test_envelopes_round_trip_through_the_real_broker(kafka_bootstrap: str, unique_topic: str) -> None:
    await create_topics(kafka_bootstrap, [unique_topic], 3)

    sent = [make_envelope(f"s-{i % 4}", i // 4 + 1, fen=i * 100) for i in range(40)]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for env in sent:
            await producer.send(unique_topic, env.SerializeToString(), key=env.stream_id.encode())
        await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(unique_topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                                group_id=f"g-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    received: list[envelope_pb2.EventEnvelope] = []
    try:
        async with asyncio.timeout(30):
            while len(received) < len(sent):
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    for rec in records:
                        env = envelope_pb2.EventEnvelope.FromString(rec.value)
                        assert rec.key == env.stream_id.encode()
                        received.append(env)
    finally:
        await consumer.stop()

    assert sorted(e.event_id for e in received) == sorted(e.event_id for e in sent)
    # Keyed by stream id, each stream's events arrive in version order.
    for stream in {e.stream_id for e in sent}:
        versions = [e.stream_version for e in received if e.stream_id == stream]
        assert versions == sorted(versions) == list(range(1, 11))
    money = types_pb2.Money()
    assert received[0].payload.Unpack(money) and money.fen % 100 == 0


async def test_a_row_round_trips_through_postgresql(pg_database: str) -> None:
    conn = await asyncpg.connect(pg_database)
    try:
        await conn.execute("CREATE TABLE t (id uuid PRIMARY KEY, amount_fen bigint NOT NULL, body bytea)")
        row_id = uuid.uuid4()
        await conn.execute("INSERT INTO t VALUES ($1, $2, $3)", row_id, 1_757_000_000, b"\x00\xff")
        row = await conn.fetchrow("SELECT * FROM t WHERE id = $1", row_id)
    finally:
        await conn.close()
    assert row is not None
    assert (row["id"], row["amount_fen"], row["body"]) == (row_id, 1_757_000_000, b"\x00\xff")
