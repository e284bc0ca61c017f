"""The transactional outbox relay: publishes committed events to Kafka, in stream order.

How nothing is skipped: the relay never remembers a position. It reads the outbox rows
that are visible now (committed), publishes them in position order, and deletes exactly
those rows once Kafka has acknowledged them. A transaction that took a smaller position
but commits after a larger one has committed (the gap a "WHERE position > last" relay
would skip forever) simply shows up in a later read, because its row is still in the
outbox. Rolled-back transactions leave no row, so they are never published.

Stream order: a stream's version N+1 can only commit after version N did (the unique
(stream_id, version) key), so it gets a larger position and is read in the same or a later
batch; messages are keyed by stream id and sent by an idempotent producer, which keeps
order within a partition.

Crashes: a relay killed after publishing and before deleting publishes those rows again on
restart (at least once); consumers skip what they have applied (stream id + version).
One relay is active per database: it holds a PostgreSQL advisory lock, released when its
connection dies, so a standby takes over.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter, Gauge, Histogram

from ganshou_common import logs
from aiokafka.partitioner import DefaultPartitioner, murmur2
from google.protobuf.timestamp_pb2 import Timestamp

from ganshou.common.v1 import envelope_pb2, types_pb2
from ganshou_common.codec import TYPE_URL_PREFIX
from ganshou_common.kafka_config import client_kwargs

BACKLOG = Gauge("ganshou_outbox_backlog_events", "Events committed but not yet published", ["source"])
PUBLISHED = Counter("ganshou_outbox_published_events_total", "Events published to Kafka", ["source"])
BATCH_SECONDS = Histogram("ganshou_outbox_publish_batch_seconds", "Time to publish one batch", ["source"])
LEADER = Gauge("ganshou_outbox_relay_leader", "1 while this relay holds the leader lock", ["source"])

# Times come as microseconds since the epoch: building protobuf Timestamps from them is
# several times cheaper than from datetimes, and the relay is CPU-bound in Python.
# The outbox's first rows, then each one's event by its key (OFFSET 0 keeps the planner
# from merging the join, which walked the events index from its start: 25 ms a fetch
# after ~50k events, and growing; measured with pg_stat_statements). An event stored with
# an infinite time (asyncpg's mapping of datetime.min) is dated when recorded rather than
# stopping the relay on it.
_FETCH = """
SELECT e.position, e.event_id::text, e.stream_id, e.stream_type, e.version, e.event_type, e.payload,
       e.community_id, (extract(epoch FROM CASE WHEN isfinite(e.occurred_at) THEN e.occurred_at
                                                  ELSE e.recorded_at END) * 1000000)::bigint AS occurred_us,
       (extract(epoch FROM e.recorded_at) * 1000000)::bigint AS recorded_us, e.correlation_id,
       e.causation_id, e.actor_subject, e.actor_role
FROM (SELECT position FROM outbox ORDER BY position LIMIT $1) o
CROSS JOIN LATERAL (SELECT * FROM events ev WHERE ev.position = o.position OFFSET 0) e
ORDER BY o.position
"""
_LOCK_KEY = "ganshou-outbox-relay"

log = logs.get("ganshou.outbox")


class CachedPartitioner:
    """aiokafka's default partitioner (murmur2 of the key, as Java's), remembered per key:
    a stream's events all hash alike, and murmur2 in pure Python is the relay's next cost."""

    def __init__(self, size: int = 100_000):
        self._cache: dict[tuple[bytes, int], int] = {}
        self._size = size

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return DefaultPartitioner()(key, all_partitions, available)
        slot = self._cache.get((key, len(all_partitions)))
        if slot is None:
            if len(self._cache) >= self._size:
                self._cache.clear()
            slot = self._cache[(key, len(all_partitions))] = (murmur2(key) & 0x7FFFFFFF) % len(all_partitions)
        return all_partitions[slot]


def envelope_bytes(r: asyncpg.Record, source: str) -> bytes:
    """One outbox row as the serialized EventEnvelope (see codec.to_envelope)."""
    env = envelope_pb2.EventEnvelope(
        event_id=r[1], stream_id=r[2], stream_type=r[3], stream_version=r[4], event_type=r[5],
        community_id=r[7], correlation_id=r[10], causation_id=r[11], source=source,
        actor=types_pb2.Actor(subject=r[12], role=r[13]),
        occurred_at=Timestamp(seconds=r[8] // 1_000_000, nanos=r[8] % 1_000_000 * 1000),
        recorded_at=Timestamp(seconds=r[9] // 1_000_000, nanos=r[9] % 1_000_000 * 1000),
    )
    env.payload.type_url = TYPE_URL_PREFIX + r[5]
    env.payload.value = r[6]
    return env.SerializeToString()


async def new_producer(bootstrap: str) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        **client_kwargs(),
        partitioner=CachedPartitioner(),
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=1 << 20,
        compression_type=None,
    )
    await producer.start()
    return producer


class OutboxRelay:
    def __init__(self, dsn: str, bootstrap: str, topic: str, source: str, batch_size: int = 5000,
                 poll_s: float = 0.1):
        self.dsn, self.bootstrap, self.topic, self.source = dsn, bootstrap, topic, source
        self.batch_size, self.poll_s = batch_size, poll_s
        self._stopping = asyncio.Event()
        self._partitioner = CachedPartitioner()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Relay until stop(); survives broker and database outages by retrying."""
        while not self._stopping.is_set():
            try:
                await self._run_as_leader()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("relay_database_error", error=str(exc))
                await self._sleep(1.0)
            except Exception as exc:  # a broker error, or anything else: retry, never die
                log.exception("relay_error", error=str(exc))
                await self._sleep(1.0)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass

    async def _run_as_leader(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        producer: AIOKafkaProducer | None = None
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", _LOCK_KEY):
                LEADER.labels(self.source).set(0)
                await self._sleep(1.0)
                if self._stopping.is_set():
                    return
            LEADER.labels(self.source).set(1)
            log.info("relay_leader", topic=self.topic)
            producer = await new_producer(self.bootstrap)
            last_backlog = 0.0
            while not self._stopping.is_set():
                published = await self.relay_once(conn, producer)
                if time.monotonic() - last_backlog > 1.0:
                    BACKLOG.labels(self.source).set(await conn.fetchval("SELECT count(*) FROM outbox"))
                    last_backlog = time.monotonic()
                if published < self.batch_size:
                    # Polled, not notified (NOTIFY serialises every commit, see 0003_outbox_polled.sql):
                    # the commits of these milliseconds share the next fetch, produce request
                    # and delete (100 ms against 20: 212 commands/s against 190 in the soak's
                    # capacity scenario). An idle relay costs one empty index scan per poll.
                    await self._sleep(self.poll_s)
        finally:
            LEADER.labels(self.source).set(0)
            if producer is not None:
                await producer.stop()
            await conn.close()

    async def relay_once(self, conn: asyncpg.Connection, producer: AIOKafkaProducer) -> int:
        """Publish one batch of committed outbox rows and delete them; returns how many."""
        rows = await conn.fetch(_FETCH, self.batch_size)
        if not rows:
            return 0
        started = time.perf_counter()
        deliveries = await publish(producer, self.topic, ((r[2].encode(), envelope_bytes(r, self.source)) for r in rows),
                                   self._partitioner)
        await asyncio.gather(*deliveries)  # raises if any was not acknowledged: keep the rows
        await conn.execute("DELETE FROM outbox WHERE position = ANY($1::bigint[])", [r["position"] for r in rows])
        PUBLISHED.labels(self.source).inc(len(rows))
        BATCH_SECONDS.labels(self.source).observe(time.perf_counter() - started)
        return len(rows)


async def publish(producer: AIOKafkaProducer, topic: str, messages, partitioner: CachedPartitioner) -> list:
    """Send (key, value) messages as whole record batches, one per partition at a time, in
    the order given; returns the batches' delivery futures. aiokafka's per-message `send`
    (a coroutine, a partitioner call and an accumulator lookup each) was most of the relay's
    time; a batch builder's append is a plain call. Same partition as `send` would choose
    (murmur2 of the key), so a stream's events stay in one partition, in order."""
    partitions = sorted(await producer.partitions_for(topic))
    builders: dict[int, object] = {}
    deliveries = []
    for key, value in messages:
        partition = partitioner(key, partitions, partitions)
        builder = builders.get(partition)
        if builder is None:
            builder = builders[partition] = producer.create_batch()
        if builder.append(timestamp=None, key=key, value=value) is None:  # full: send it, start another
            deliveries.append(await producer.send_batch(builder, topic, partition=partition))
            builder = builders[partition] = producer.create_batch()
            builder.append(timestamp=None, key=key, value=value)
    for partition, builder in builders.items():
        deliveries.append(await producer.send_batch(builder, topic, partition=partition))
    return deliveries
