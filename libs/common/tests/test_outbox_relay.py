"""The outbox relay on the real broker and database, killed at random moments.

Guarantee: every committed event is published, each stream's order is kept, and nothing
from a rolled-back transaction is ever published, even when transactions commit out of
position order (late commits) and the relay is SIGKILLed and restarted under load.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner

from ganshou_common.eventstore import ANY_VERSION, NewEvent, StreamAppend, StreamVersionConflict
from ganshou_common.eventstore.postgres import PostgresEventStore
from ganshou_common.migrate import migrate
from ganshou_common.outbox.relay import CachedPartitioner, publish
from ganshou_common.testing.kafka import read_records, read_topic
from ganshou_common.testing.procs import free_port, kill, spawn_module

pytestmark = pytest.mark.integration

WRITERS = 16
STREAMS = 40
WRITE_SECONDS = 10.0


class Rollback(Exception):
    pass


async def writer(store: PostgresEventStore, rng: random.Random, until: float, stats: dict) -> None:
    while time.monotonic() < until:
        stream = f"s-{rng.randrange(STREAMS)}"
        n = rng.choice([1, 1, 1, 2, 3])
        roll_back = rng.random() < 0.1
        late = rng.random() < 0.1
        tag = uuid.uuid4().hex
        events = [NewEvent("ganshou.test.v1.Happened", f"{'rb' if roll_back else 'ok'}:{tag}:{i}".encode())
                  for i in range(n)]
        try:
            async with store.transaction() as tx:
                await tx.append(StreamAppend(stream, "thing", ANY_VERSION, events))
                if late:  # hold an early position uncommitted while later ones commit
                    await asyncio.sleep(rng.uniform(0.05, 0.4))
                if roll_back:
                    raise Rollback
            stats["committed"] += n
        except Rollback:
            stats["rolled_back"] += n
        except StreamVersionConflict:
            stats["conflicts"] += 1


async def relay_killer(env: dict[str, str], log: Path, until: float, stats: dict) -> None:
    rng = random.Random()
    proc = spawn_module("ganshou_common.outbox", env, log)
    try:
        while time.monotonic() < until:
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            kill(proc, signal.SIGKILL)
            stats["kills"] += 1
            proc = spawn_module("ganshou_common.outbox", env, log)
    finally:
        stats["proc"] = proc


async def test_every_committed_event_is_published_in_order_despite_kills(
    pg_database: str, kafka_bootstrap: str, unique_topic: str, tmp_path: Path
) -> None:
    await migrate(pg_database)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(unique_topic, num_partitions=4, replication_factor=1)])
    await admin.close()

    store = await PostgresEventStore.connect(pg_database, max_size=WRITERS + 2)
    env = {"DATABASE_URL": pg_database, "KAFKA_BOOTSTRAP": kafka_bootstrap, "GANSHOU_SERVICE": "test",
           "OUTBOX_TOPIC": unique_topic, "METRICS_PORT": str(free_port()), "OUTBOX_BATCH_SIZE": "500"}
    stats = {"committed": 0, "rolled_back": 0, "conflicts": 0, "kills": 0}
    until = time.monotonic() + WRITE_SECONDS
    rng = random.Random(20161127)
    log = tmp_path / "relay.log"
    await asyncio.gather(
        *(writer(store, random.Random(rng.random()), until, stats) for _ in range(WRITERS)),
        relay_killer(env, log, until, stats),
    )
    relay = stats.pop("proc")
    try:
        async with asyncio.timeout(60):  # the last relay drains the outbox
            while await store.outbox_backlog():
                await asyncio.sleep(0.2)
    finally:
        kill(relay, signal.SIGTERM)
    conn = await asyncpg.connect(pg_database)
    committed = {(r["stream_id"], r["version"]): bytes(r["payload"])
                 for r in await conn.fetch("SELECT stream_id, version, payload FROM events")}
    await conn.close()
    await store.close()

    messages = await read_topic(kafka_bootstrap, unique_topic)

    published = {(m.stream_id, m.stream_version): m.payload.value for m in messages}
    first_seen: dict[str, list[int]] = {}
    for m in messages:
        seen = first_seen.setdefault(m.stream_id, [])
        if m.stream_version not in seen:
            seen.append(m.stream_version)
    print(f"\nrelay kill test: {stats['committed']} events committed, {stats['rolled_back']} rolled back, "
          f"{stats['kills']} relay kills, {len(messages)} messages on Kafka "
          f"({len(messages) - len(published)} redelivered duplicates)")

    assert stats["kills"] >= 5 and stats["committed"] > 1000
    assert published.keys() == committed.keys(), "every committed event published, nothing else"
    assert all(published[k] == committed[k] for k in committed)
    assert not any(v.startswith(b"rb:") for v in published.values()), "a rolled-back event was published"
    for stream, versions in first_seen.items():
        assert versions == list(range(1, len(versions) + 1)), f"{stream} out of order: {versions}"


async def test_batches_land_where_send_would_put_them_in_order(kafka_bootstrap: str, unique_topic: str) -> None:
    """publish() builds record batches itself: each key's messages must land in the
    partition aiokafka's send() (murmur2) picks, in order, also when a batch fills up."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(unique_topic, num_partitions=3, replication_factor=1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True,
                                max_batch_size=2048)  # a few dozen messages a batch: many batches
    await producer.start()
    try:
        messages = [(f"stream-{i % 7}".encode(), f"{i % 7}:{i // 7}".encode()) for i in range(700)]
        deliveries = await publish(producer, unique_topic, messages, CachedPartitioner())
        assert len(deliveries) > 3
        await asyncio.gather(*deliveries)
        partitions = sorted(await producer.partitions_for(unique_topic))
        expected = {k: DefaultPartitioner()(k, partitions, partitions) for k, _ in messages}
    finally:
        await producer.stop()
    records = await read_records(kafka_bootstrap, unique_topic)
    assert sorted(r.value for r in records) == sorted(v for _, v in messages)
    seen: dict[bytes, list[int]] = {}
    for r in records:
        assert r.partition == expected[r.key]
        seen.setdefault(r.key, []).append(int(r.value.split(b":")[1]))
    assert all(v == list(range(100)) for v in seen.values())


async def test_no_commit_notifies(pg_database: str) -> None:
    """The relay polls: a NOTIFY in a command's transaction would take a database-wide lock
    through its commit's disk flush, and every command's commit would queue behind the last
    (0003_outbox_polled.sql)."""
    await migrate(pg_database)
    conn = await asyncpg.connect(pg_database)
    try:
        notifying = await conn.fetch(
            "SELECT t.tgname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
            "WHERE NOT t.tgisinternal AND p.prosrc ILIKE '%notify%'")
    finally:
        await conn.close()
    assert notifying == []


async def test_an_event_stored_with_an_infinite_time_does_not_stop_the_relay(
    pg_database: str, kafka_bootstrap: str, unique_topic: str, tmp_path: Path
) -> None:
    """asyncpg stores datetime.min as -infinity, which no epoch holds: the relay once failed on
    such an event at every fetch, and every event behind it waited. It is dated when recorded."""
    await migrate(pg_database)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(unique_topic, num_partitions=1, replication_factor=1)])
    await admin.close()
    store = await PostgresEventStore.connect(pg_database)
    async with store.transaction() as tx:
        await tx.append(StreamAppend("s-1", "thing", ANY_VERSION, [
            NewEvent("ganshou.test.v1.Happened", b"dateless", occurred_at=datetime.min.replace(tzinfo=UTC)),
            NewEvent("ganshou.test.v1.Happened", b"behind it")]))
    env = {"DATABASE_URL": pg_database, "KAFKA_BOOTSTRAP": kafka_bootstrap, "GANSHOU_SERVICE": "test",
           "OUTBOX_TOPIC": unique_topic, "METRICS_PORT": str(free_port())}
    relay = spawn_module("ganshou_common.outbox", env, tmp_path / "relay.log")
    try:
        async with asyncio.timeout(30):
            while await store.outbox_backlog():
                await asyncio.sleep(0.2)
    finally:
        kill(relay, signal.SIGTERM)
        await store.close()
    messages = await read_topic(kafka_bootstrap, unique_topic)
    assert [m.payload.value for m in messages] == [b"dateless", b"behind it"]
    assert messages[0].occurred_at == messages[0].recorded_at
