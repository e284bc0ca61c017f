"""Topics in tests: made, and read back whole to compare what was published with what was stored."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ganshou.common.v1 import envelope_pb2


async def create_topics(bootstrap: str, names, partitions: int) -> None:
    """New topics of `partitions` partitions each (one replica: the test broker's one)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names])
    finally:
        await admin.close()


async def read_topic(bootstrap: str, topic: str, timeout_s: float = 60) -> list[envelope_pb2.EventEnvelope]:
    """Every envelope on `topic` now, partition by partition in offset order."""
    return [envelope_pb2.EventEnvelope.FromString(r.value) for r in await read_records(bootstrap, topic, timeout_s)]


async def read_records(bootstrap: str, topic: str, timeout_s: float = 60) -> list[ConsumerRecord]:
    """Every record on `topic` now, partition by partition in offset order."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        out: list[ConsumerRecord] = []
        async with asyncio.timeout(timeout_s):
            for tp in partitions:
                while await consumer.position(tp) < end[tp]:
                    for record in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                        out.append(record)
        return out
    finally:
        await consumer.stop()
