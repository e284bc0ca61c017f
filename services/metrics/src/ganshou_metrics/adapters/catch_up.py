"""A new generation's first pass over the source topics, outside faust.

faust's per-message path costs ~720 µs of CPU an event here (its fetcher, conductor and
stream, and one changelog message per row written), so a rebuild through it projects under
2,000 events/s. A new generation (no committed offset in any source partition) instead
reads every partition up to its end as it is at start with a plain consumer, folds the
events into rows with the same `apply` (the same rows faust would hold), writes each row
once to its table's changelog partition (the partition of the events it came from, as
faust's co-partitioned tables do), and only then commits each source partition's offset
for faust's group. The rows are handed to faust's tables with the changelog offsets they
include (preloaded_store.py), so faust's recovery reads nothing back, and it goes on from
the committed offsets as after any restart.

Exactness. A partition stops at its first event the projection refuses (poison or
nonsense): that event and the rest are left to faust, which dead-letters it as usual.
Offsets are committed only after every row is acknowledged by the broker, so a pass killed
mid-way commits nothing; the next start passes again from the beginning up to a later end,
and its rows (a superset, each as new or newer) follow the first pass's in the changelogs.
Two workers of one generation must not pass at once (an older row could land after a newer
one): the pass is held under a lock, the one partition of `<group>.catch-up` in a consumer
group of that name (assigned sticky: it stays with its holder while others join), and
re-checks the committed offsets once it holds it. The commit itself
carries no group generation, which the broker refuses while faust's group has members.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.structs import OffsetAndMetadata
from google.protobuf.message import DecodeError

from ganshou_common import logs
from ganshou_common.consumer import PoisonMessage, decode
from ganshou_common.kafka_config import client_kwargs
from ganshou_common.sense import Nonsense, checked_payload
from ganshou_metrics.adapters.preloaded_store import preload
from ganshou_metrics.adapters.row_codec import decode_row, encode_key, encode_row
from ganshou_metrics.domain.projection import apply

log = logs.get("ganshou.metrics.catch_up")


@dataclass
class Pass:
    """What one pass read and wrote."""

    events: int = 0
    rows: int = 0
    seconds: float = 0.0
    stopped_at: dict[str, int] = field(default_factory=dict)  # "topic[p]" → the refused event's offset


class Tables:
    """Per source topic: its table's changelog topic and how a row's key and value are
    serialised there (faust's own codecs, so faust's recovery reads them back)."""

    def __init__(self, tables: Mapping[str, object]):
        self._tables = dict(tables)  # source topic → faust.Table

    def topics(self) -> list[str]:
        return list(self._tables)

    def changelog(self, topic: str) -> str:
        return self._tables[topic].changelog_topic_name

    def preload(self, topic: str, rows: dict[str, bytes], partitions: dict[str, int],
                last_offsets: dict[TopicPartition, int]) -> None:
        """Hand the rows to the table's store (preloaded_store.py): faust need not read them back."""
        preload(self._tables[topic], rows, partitions, last_offsets)

    def serialise(self, topic: str, key: str, row: bytes) -> tuple[bytes, bytes]:
        """The changelog message's key and value, as faust writes them."""
        table = self._tables[topic]
        if table.key_serializer == "json" and table.value_serializer == "raw":
            # faust's json codec's form, without its per-call machinery (13 µs a row
            # through prepare_key); the row is its bytes already.
            return encode_key(key), row
        k, _ = table.changelog_topic.prepare_key(key, table.key_serializer)
        v, _ = table.changelog_topic.prepare_value(row, table.value_serializer)
        return k, v


async def _committed(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[TopicPartition, int | None]:
    consumer.assign(tps)
    return {tp: await consumer.committed(tp) for tp in tps}


async def _lock(bootstrap: str, group_id: str) -> AIOKafkaConsumer:
    """Hold the one partition of `<group>.catch-up`: one pass per generation at a time."""
    name = f"{group_id}.catch-up"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_kwargs())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()
    # Sticky: a worker joining while the holder passes must not be handed the partition (the
    # range assignor gives it to the lowest member id). Its own subclass: the sticky
    # assignor keeps its state on the class, and each holder needs its own.
    sticky = type("CatchUpLock", (StickyPartitionAssignor,), {"member_assignment": None, "generation": -1})
    holder = AIOKafkaConsumer(name, bootstrap_servers=bootstrap, group_id=name, enable_auto_commit=False,
                              session_timeout_ms=10_000, heartbeat_interval_ms=2_000,
                              max_poll_interval_ms=3_600_000, partition_assignment_strategy=(sticky,),
                              **client_kwargs())
    await holder.start()
    while TopicPartition(name, 0) not in holder.assignment():
        await holder.getmany(timeout_ms=500)  # drives the group's rebalances
    return holder


def _holds(holder: AIOKafkaConsumer) -> bool:
    return bool(holder.assignment())


async def _read(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int], done: Pass,
                rows: dict[str, dict[str, bytes]], where: dict[str, dict[str, int]]) -> dict[TopicPartition, int]:
    """Fold every partition up to its end (or its first refused event); the offsets to commit."""
    stop = dict(ends)
    todo = {tp for tp, end in ends.items() if end > 0}
    consumer.assign(list(todo))
    for tp in todo:
        consumer.seek(tp, 0)
    while todo:
        batches = await consumer.getmany(*todo, timeout_ms=500, max_records=5000)
        for tp, records in batches.items():
            table, places, position, refused = rows[tp.topic], where[tp.topic], 0, False
            for record in records:
                if record.offset >= stop[tp]:
                    break
                try:
                    env = decode(record.value)
                    msg = checked_payload(env)
                    key = env.stream_id
                    new = apply(decode_row(table.get(key)), env, msg)
                except (Nonsense, PoisonMessage, DecodeError, KeyError, ValueError, TypeError) as exc:
                    stop[tp] = record.offset  # left to faust, which dead-letters it as usual
                    log.warning("catch_up_partition_stopped", topic=tp.topic, partition=tp.partition,
                                offset=record.offset, error=repr(exc))
                    done.stopped_at[f"{tp.topic}[{tp.partition}]"] = record.offset
                    refused = True
                    break
                position = record.offset + 1
                done.events += 1
                if new is not None:
                    table[key] = encode_row(new)  # held as the tables hold rows (row_codec.py)
                    places[key] = tp.partition
            # The consumer's position also passes offsets that hold no record.
            if refused or max(position, await consumer.position(tp)) >= stop[tp]:
                todo.discard(tp)
                consumer.pause(tp)
    return stop


async def _write(producer: AIOKafkaProducer, tables: Tables, rows: dict[str, dict[str, bytes]],
                 where: dict[str, dict[str, int]]) -> dict[TopicPartition, int]:
    """Every row to its changelog partition, acknowledged by the broker (acks=all); per
    changelog partition, the offset of the last row written. Rows are packed into record
    batches by hand: aiokafka's per-message send costs more than the fold of an event."""
    last: dict[TopicPartition, int] = {}
    open_batches: dict[TopicPartition, object] = {}
    sent: list[tuple[TopicPartition, int, asyncio.Future]] = []

    async def flush(tp: TopicPartition) -> None:
        batch = open_batches.pop(tp)
        sent.append((tp, batch.record_count(), await producer.send_batch(batch, tp.topic, partition=tp.partition)))

    for topic, table in rows.items():
        changelog, places = tables.changelog(topic), where[topic]
        for key, row in table.items():
            tp = TopicPartition(changelog, places[key])
            k, v = tables.serialise(topic, key, row)
            if tp not in open_batches:
                open_batches[tp] = producer.create_batch()
            if open_batches[tp].append(key=k, value=v, timestamp=None) is None:  # full
                await flush(tp)
                open_batches[tp] = producer.create_batch()
                if open_batches[tp].append(key=k, value=v, timestamp=None) is None:
                    raise ValueError(f"row {key!r} is larger than a whole record batch ({len(v)} bytes)")
    for tp in list(open_batches):
        await flush(tp)
    for tp, count, future in sent:
        meta = await future  # the batch's first offset
        last[tp] = max(last.get(tp, -1), meta.offset + count - 1)
    return last


async def catch_up(bootstrap: str, group_id: str, tables: Tables, partitions: int) -> Pass | None:
    """Pass over the source topics when this generation has not started yet; None when it
    has (faust goes on from its committed offsets)."""
    tps = [TopicPartition(t, p) for t in tables.topics() for p in range(partitions)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024,
                                fetch_max_bytes=32 * 1024 * 1024, **client_kwargs())
    await consumer.start()
    holder = None
    try:
        if any(o is not None for o in (await _committed(consumer, tps)).values()):
            return None
        holder = await _lock(bootstrap, group_id)
        if any(o is not None for o in (await _committed(consumer, tps)).values()):
            return None  # another worker passed while this one waited for the lock
        started, done = time.monotonic(), Pass()
        ends = await consumer.end_offsets(tps)
        log.info("catch_up_started", group=group_id, events_at_most=sum(ends.values()))
        rows: dict[str, dict[str, bytes]] = {t: {} for t in tables.topics()}
        where: dict[str, dict[str, int]] = {t: {} for t in tables.topics()}
        # The pass only adds objects, none in cycles; the collector's full passes over a
        # growing million rows doubled its time. Off for the pass; after it, the rows are
        # frozen (never scanned again: faust's worker then collects only what is new).
        gc.disable()
        try:
            stop = await _read(consumer, ends, done, rows, where)
            read_s = time.monotonic() - started
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",  # under the broker's 1 MiB
                                        max_batch_size=512 * 1024, **client_kwargs())
            await producer.start()
            try:
                last_offsets = await _write(producer, tables, rows, where)
            finally:
                await producer.stop()
        finally:
            gc.freeze()
            gc.enable()
        if not _holds(holder):
            raise RuntimeError("catch-up lock lost before its commit: nothing committed")
        consumer.assign(tps)  # aiokafka commits only assigned partitions
        await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in stop.items()})
        for topic in tables.topics():
            done.rows += len(rows[topic])
            tables.preload(topic, rows[topic], where[topic], last_offsets)
        done.seconds = time.monotonic() - started
        log.info("catch_up_done", group=group_id, events=done.events, rows=done.rows,
                 seconds=round(done.seconds, 1), reading_s=round(read_s, 1),
                 events_per_s=round(done.events / max(done.seconds, 1e-6)), stopped_at=done.stopped_at)
        return done
    finally:
        if holder is not None:
            await holder.stop()
        await consumer.stop()
