"""The metrics worker reads a stretch its stream passed over straight from the real broker,
and asks the broker for the group's committed offset when faust has not read it back."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from ganshou_common.testing.kafka import create_topics
from ganshou_metrics.adapters.partition_reader import PartitionReader, StretchUnavailable

pytestmark = pytest.mark.integration


async def _topic_with(bootstrap: str, topic: str, count: int) -> None:
    await create_topics(bootstrap, [topic], 2)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(count):
            await producer.send_and_wait(topic, f"p1-{i}".encode(), key=b"k", partition=1)
        await producer.send_and_wait(topic, b"p0-0", key=b"k", partition=0)
    finally:
        await producer.stop()


async def test_a_stretch_is_read_in_order_and_only_that_stretch(kafka_bootstrap: str, unique_topic: str) -> None:
    await _topic_with(kafka_bootstrap, unique_topic, 5000)
    reader = PartitionReader(kafka_bootstrap, f"group-{unique_topic}")
    try:
        got = [(r.offset, r.value) async for r in reader.read(unique_topic, 1, 1234, 4321)]
        assert got == [(o, f"p1-{o}".encode()) for o in range(1234, 4321)]
        # Another partition next, with the same consumer: nothing of the first leaks in.
        assert [r.value async for r in reader.read(unique_topic, 0, 0, 1)] == [b"p0-0"]
        assert [r.offset async for r in reader.read(unique_topic, 1, 4998, 5000)] == [4998, 4999]
    finally:
        await reader.close()


async def test_a_stretch_the_broker_does_not_have_is_reported_not_waited_for(kafka_bootstrap: str,
                                                                               unique_topic: str) -> None:
    await _topic_with(kafka_bootstrap, unique_topic, 3)
    reader = PartitionReader(kafka_bootstrap, f"group-{unique_topic}", patience_s=1.0)
    try:
        with pytest.raises(StretchUnavailable):
            _ = [r async for r in reader.read(unique_topic, 1, 2, 10)]
    finally:
        await reader.close()


async def test_the_committed_offset_is_the_groups_and_reading_commits_nothing(kafka_bootstrap: str,
                                                                               unique_topic: str) -> None:
    await _topic_with(kafka_bootstrap, unique_topic, 10)
    group = f"group-{unique_topic}"
    reader = PartitionReader(kafka_bootstrap, group)
    try:
        assert await reader.committed(unique_topic, 1) is None  # nothing committed yet
        member = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
        await member.start()
        try:
            member.assign([TopicPartition(unique_topic, 1)])
            await member.commit({TopicPartition(unique_topic, 1): 7})
        finally:
            await member.stop()
        assert await reader.committed(unique_topic, 1) == 7
        _ = [r async for r in reader.read(unique_topic, 1, 0, 10)]
        assert await reader.committed(unique_topic, 1) == 7
    finally:
        await reader.close()


async def test_agents_asking_at_once_share_one_admin_client(kafka_bootstrap: str, unique_topic: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    await _topic_with(kafka_bootstrap, unique_topic, 3)
    reader = PartitionReader(kafka_bootstrap, f"group-{unique_topic}")
    started: list[object] = []
    original = AIOKafkaAdminClient.start

    async def counted(self):
        started.append(self)
        await original(self)

    monkeypatch.setattr(AIOKafkaAdminClient, "start", counted)
    try:
        assert await asyncio.gather(*(reader.committed(unique_topic, p % 2) for p in range(4))) == [None] * 4
        assert len(started) == 1  # one client, closed with the reader (none left open)
    finally:
        await reader.close()
