"""The first pass's reading: partitions from their start up to given ends, as record batches,
from the real broker."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.records_to_delete import RecordsToDelete

from ganshou_common.testing.kafka import create_topics
from ganshou_metrics.adapters.bounded_fetch import BoundedFetch, FetchFailed

pytestmark = pytest.mark.integration


async def _topic_with(bootstrap: str, topic: str, counts: dict[int, int]) -> None:
    await create_topics(bootstrap, [topic], 3)
    # Small batches: a partition takes many batches and, with the fetch's bytes capped, many fetches.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_batch_size=16 * 1024, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, f"p{p}-{i}".encode() * 20, key=f"k{i}".encode(), partition=p)
                   for p, n in counts.items() for i in range(n)]
        for f in futures:
            await f
    finally:
        await producer.stop()


async def _delete_before(bootstrap: str, tp: TopicPartition, offset: int) -> None:
    """The partition's records below `offset` deleted: its log now begins there."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_records({tp: RecordsToDelete(before_offset=offset)})
    finally:
        await admin.close()


async def _read(fetch: BoundedFetch, ends: dict[TopicPartition, int],
                starts: dict[TopicPartition, int] | None = None) -> dict[TopicPartition, list[bytes]]:
    """What a pass takes: records at first ≤ offset < end, each partition in order."""
    got: dict[TopicPartition, list[bytes]] = {tp: [] for tp in ends}
    await fetch.start()
    try:
        async for tp, batches, first in fetch:
            for batch in batches:
                for record in batch:
                    if first <= record.offset < ends[tp]:
                        assert record.offset == (starts or {}).get(tp, 0) + len(got[tp]), "each record once, in order"
                        got[tp].append(record.value)
    finally:
        await fetch.close()
    return got


async def test_every_partition_is_read_from_its_start_to_its_end_in_order(kafka_bootstrap: str, unique_topic: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    await _topic_with(kafka_bootstrap, unique_topic, {0: 3000, 1: 10, 2: 0})
    # A fetch's bytes capped below a partition's: its reading takes many fetches.
    monkeypatch.setattr("ganshou_metrics.adapters.bounded_fetch.PARTITION_BYTES", 64 * 1024)
    ends = {TopicPartition(unique_topic, 0): 2500, TopicPartition(unique_topic, 1): 10,
            TopicPartition(unique_topic, 2): 0}
    got = await _read(BoundedFetch(kafka_bootstrap, ends), ends)
    assert got[TopicPartition(unique_topic, 0)] == [f"p0-{i}".encode() * 20 for i in range(2500)]
    assert got[TopicPartition(unique_topic, 1)] == [f"p1-{i}".encode() * 20 for i in range(10)]
    assert got[TopicPartition(unique_topic, 2)] == []


async def test_a_dropped_partition_is_fetched_no_more(kafka_bootstrap: str, unique_topic: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    await _topic_with(kafka_bootstrap, unique_topic, {0: 3000, 1: 3000})
    monkeypatch.setattr("ganshou_metrics.adapters.bounded_fetch.PARTITION_BYTES", 16 * 1024)
    ends = {TopicPartition(unique_topic, p): 3000 for p in (0, 1)}
    fetch, seen = BoundedFetch(kafka_bootstrap, ends), {0: 0, 1: 0}
    await fetch.start()
    try:
        async for tp, batches, first in fetch:
            seen[tp.partition] += 1
            if tp.partition == 0:
                fetch.drop(tp)
    finally:
        await fetch.close()
    # One fetch of partition 0 may have been in flight when it was dropped: it is not handed out.
    assert seen[0] == 1 and seen[1] > 10


async def test_a_partition_whose_first_events_are_gone_fails_the_read(kafka_bootstrap: str, unique_topic: str) -> None:
    await _topic_with(kafka_bootstrap, unique_topic, {0: 100})
    tp = TopicPartition(unique_topic, 0)
    await _delete_before(kafka_bootstrap, tp, 40)
    # A consumer would jump to its reset offset and read on: a pass must not start past them.
    with pytest.raises(FetchFailed, match="first events are gone"):
        await _read(BoundedFetch(kafka_bootstrap, {tp: 100}), {tp: 100})



async def test_a_read_from_given_starts_begins_there(kafka_bootstrap: str, unique_topic: str) -> None:
    """As a restart reads a changelog: from the log's beginning, which need not be 0."""
    await _topic_with(kafka_bootstrap, unique_topic, {0: 100})
    tp = TopicPartition(unique_topic, 0)
    await _delete_before(kafka_bootstrap, tp, 40)
    got = await _read(BoundedFetch(kafka_bootstrap, {tp: 100}, {tp: 40}), {tp: 100}, {tp: 40})
    assert got[tp] == [f"p0-{i}".encode() * 20 for i in range(40, 100)]
