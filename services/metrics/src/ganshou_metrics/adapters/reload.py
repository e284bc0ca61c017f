"""A started generation's rows read back from its changelogs outside faust, before faust
starts (a restart, a new pod of a running generation).

faust's recovery reads a changelog through its per-message path: ~4,000 rows/s here, so a
worker restarted with a million rows served its figures again only after ~255 s. This reads
every changelog partition from its beginning up to its end as at start (bounded_fetch.py, as
the first pass reads the source topics), keeps each
key's last row (a tombstone removes it) and hands the rows to the tables' stores with the
offset of each partition's last record (preloaded_store.py): faust's recovery then reads
only what was written after that, and its figures are recomputed from the rows as after
any recovery. Every partition is read, whatever faust assigns this worker later: the store
drops the rows of the partitions it is not given once recovery completes (as after a
first pass), and recovers from the changelog as usual a partition given to it later.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from ganshou_common import logs
from ganshou_common.kafka_config import client_kwargs
from ganshou_metrics.adapters.bounded_fetch import BoundedFetch
from ganshou_metrics.adapters.tables import Tables

log = logs.get("ganshou.metrics.reload")


@dataclass
class Reloaded:
    records: int = 0  # changelog records read
    rows: int = 0  # rows handed to the tables
    unreadable: int = 0  # records whose key is not faust's json (none faust writes): passed over
    seconds: float = 0.0


async def reload(bootstrap: str, tables: Tables, partitions: int) -> Reloaded:
    """Every table's rows from its changelog, preloaded into its store."""
    if not all(tables.plain(t) for t in tables.topics()):
        raise ValueError("rows are read back as faust's json codec keys and raw bytes")
    started, done = time.monotonic(), Reloaded()
    source_of = {tables.changelog(t): t for t in tables.topics()}
    tps = [TopicPartition(c, p) for c in source_of for p in range(partitions)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **client_kwargs())  # the offsets only
    await consumer.start()
    try:
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)  # a compacted log may start after 0
    finally:
        await consumer.stop()
    rows: dict[TopicPartition, dict[str, bytes]] = {}  # changelog partition → key → row
    fetch = BoundedFetch(bootstrap, ends, starts)
    await fetch.start()
    try:
        async for tp, batches, first in fetch:
            table, end = rows.setdefault(tp, {}), ends[tp]
            for batch in batches:
                for record in batch:
                    if record.offset < first:
                        continue
                    if record.offset >= end:
                        break
                    done.records += 1
                    try:
                        key = orjson.loads(record.key)  # faust's json codec
                    except (orjson.JSONDecodeError, TypeError):  # not one of its rows: no reason to stop
                        done.unreadable += 1
                        continue
                    if record.value is None:  # a tombstone
                        table.pop(key, None)
                    else:
                        table[key] = record.value
    finally:
        await fetch.close()
    # The offset of the last record before each end: recovery goes on after it.
    last = {tp: end - 1 for tp, end in ends.items() if end > 0}
    for changelog, topic in source_of.items():
        done.rows += tables.preload(topic, ((tp.partition, part) for tp, part in rows.items() if tp.topic == changelog),
                                    {tp: offset for tp, offset in last.items() if tp.topic == changelog})
    done.seconds = time.monotonic() - started
    log.info("changelogs_reloaded", records=done.records, rows=done.rows, unreadable=done.unreadable,
             seconds=round(done.seconds, 1), records_per_s=round(done.records / max(done.seconds, 1e-6)))
    return done
