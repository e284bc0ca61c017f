"""A started generation's rows read back from its changelogs before faust starts
(reload.py), against the real broker: each key's last row (a tombstone removes it), in the
partition it was written to, and recovery set to go on after each partition's last record."""

from __future__ import annotations

import uuid

import orjson
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from ganshou_metrics.adapters.faust_app import Projection
from ganshou_metrics.adapters.reload import reload

pytestmark = pytest.mark.integration
PARTITIONS = 3


def _row(v: int, erased: bool = False) -> bytes:
    return orjson.dumps({"v": v, "t": "resident", "s": {"kind": "resident", "c": "c1", "seg": 1, "erased": erased}})


async def test_the_last_row_of_each_key_is_preloaded_and_recovery_goes_on_after_it(kafka_bootstrap: str) -> None:
    run = uuid.uuid4().hex[:8]
    # Only the tables' changelogs are read: the source topics need not exist.
    topics = {s: f"reload.{s}.{run}" for s in ("intake", "casework", "partner-resource")}
    writer = Projection(kafka_bootstrap, f"reload-{run}", PARTITIONS, topics)
    await writer.ensure_changelogs(kafka_bootstrap)
    changelog = writer.table_of[topics["intake"]].changelog_topic_name
    # As the live worker writes them: a row a record, rewritten as its stream moves on.
    written = [(0, "resident-a", _row(1)), (1, "resident-b", _row(1)), (0, "resident-a", _row(2, True)),
               (1, "resident-c", _row(1)), (1, "resident-b", None),  # b's row removed: a tombstone
               (2, b"not json", _row(1))]  # no row of faust's (a compacted topic refuses a record without a key)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for partition, key, row in written:
            await producer.send_and_wait(changelog, row, key=orjson.dumps(key) if isinstance(key, str) else key,
                                         partition=partition)
    finally:
        await producer.stop()

    restarted = Projection(kafka_bootstrap, f"reload-{run}", PARTITIONS, topics)
    done = await reload(kafka_bootstrap, restarted._rows, PARTITIONS)

    table = restarted.table_of[topics["intake"]]
    assert (done.records, done.rows, done.unreadable) == (6, 2, 1)
    assert table.data.data == {"resident-a": _row(2, True), "resident-c": _row(1)}
    assert [table.data.preloaded_keys(p) for p in range(PARTITIONS)] == [{"resident-a"}, {"resident-c"}, set()]
    assert [table.persisted_offset(TopicPartition(changelog, p)) for p in range(PARTITIONS)] == [1, 2, 0]
    assert all(not t.data.data for t in restarted.tables.values() if t is not table)
