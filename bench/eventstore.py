"""Event-store benchmarks, side by side with their peers, in one run.

    uv run --group bench python bench/eventstore.py [--seconds 5] [--tiny]

Measures, on the local stack's PostgreSQL (default durable settings) and Kafka:
  - single-command appends with 16 concurrent writers: plain asyncpg transactions,
    pyeventsourcing's PostgreSQL recorder, Ganshou's store (commands.execute), and
    Ganshou's group commit;
  - bulk appends (many events in one transaction);
  - the outbox relay publishing to Kafka, against a raw aiokafka producer.
Writes bench/results/eventstore.json with the machine's description. Never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe  # noqa: E402

from ganshou_common.commands import execute  # noqa: E402
from ganshou_common.eventstore import ANY_VERSION, NewEvent, StreamAppend  # noqa: E402
from ganshou_common.eventstore.postgres import PostgresEventStore  # noqa: E402
from ganshou_common.group_commit import GroupCommitter  # noqa: E402
from ganshou_common.migrate import migrate  # noqa: E402
from ganshou_common.outbox.relay import OutboxRelay, new_producer  # noqa: E402
from ganshou_common.testing.fixtures import fresh_database  # noqa: E402

PG_PORT = int(os.environ.get("PG_PORT", "25432"))
KAFKA = os.environ.get("KAFKA_BOOTSTRAP", f"127.0.0.1:{os.environ.get('KAFKA_PORT', '29092')}")
PAYLOAD = b"x" * 200  # about the size of a HouseholdVisited event
STREAMS = 10_000


async def run_clients(clients: int, seconds: float, one) -> float:
    """Run `one(client_no)` in a loop from `clients` tasks for `seconds`; returns commands/s."""
    done = 0
    until = time.perf_counter() + seconds

    async def client(n: int) -> None:
        nonlocal done
        rng = random.Random(n)
        while time.perf_counter() < until:
            await one(rng)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    return done / (time.perf_counter() - started)


async def bench_plain_asyncpg(dsn: str, clients: int, seconds: float) -> float:
    pool = await asyncpg.create_pool(dsn, min_size=clients, max_size=clients)
    await pool.execute("CREATE TABLE plain_events (stream_id text, version bigint, payload bytea, "
                       "PRIMARY KEY (stream_id, version)); CREATE TABLE plain_requests (id text PRIMARY KEY)")

    async def one(rng: random.Random) -> None:
        stream = f"s-{rng.randrange(STREAMS)}"
        async with pool.acquire() as conn, conn.transaction():
            head = await conn.fetchval("SELECT coalesce(max(version), 0) FROM plain_events WHERE stream_id = $1", stream)
            await conn.execute("INSERT INTO plain_events VALUES ($1, $2, $3)", stream, head + 1, PAYLOAD)
            await conn.execute("INSERT INTO plain_requests VALUES ($1)", uuid.uuid4().hex)

    try:
        return await run_clients(clients, seconds, _retry_conflicts(one))
    finally:
        await pool.close()


def _retry_conflicts(one):
    async def wrapped(rng: random.Random) -> None:
        while True:
            try:
                return await one(rng)
            except asyncpg.UniqueViolationError:
                continue
    return wrapped


def bench_pyeventsourcing(dsn: str, clients: int, seconds: float) -> float:
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    u = urlparse(dsn)
    datastore = PostgresDatastore(u.path.lstrip("/"), u.hostname, u.port, u.username, u.password,
                                  pool_size=clients, max_overflow=0)
    recorder = PostgresApplicationRecorder(datastore)
    recorder.create_table()
    done = 0
    lock = threading.Lock()
    until = time.perf_counter() + seconds

    def client() -> None:
        nonlocal done
        while time.perf_counter() < until:
            recorder.insert_events([StoredEvent(uuid.uuid4(), 1, "bench:Happened", PAYLOAD)])
            with lock:
                done += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rate = done / (time.perf_counter() - started)
    datastore.close()
    return rate


def _decide(stream: str):
    async def decide(tx) -> bytes:
        await tx.append(StreamAppend(stream, "bench", ANY_VERSION, [NewEvent("ganshou.bench.v1.Happened", PAYLOAD)]))
        return b"ok"
    return decide


def _decide_new(stream: str):
    async def decide(tx) -> bytes:
        await tx.append(StreamAppend(stream, "bench", 0, [NewEvent("ganshou.bench.v1.Happened", PAYLOAD)]))
        return b"ok"
    return decide


async def bench_ganshou_single(dsn: str, clients: int, seconds: float, new_streams: bool = False) -> float:
    """Existing streams at any version (a head read, then one statement), or — pyeventsourcing's
    workload, a new aggregate's first event — new streams at version 0 (one statement)."""
    store = await PostgresEventStore.connect(dsn, min_size=clients, max_size=clients)

    async def one(rng: random.Random) -> None:
        if new_streams:
            await execute(store, uuid.uuid4().hex, "fp", _decide_new(uuid.uuid4().hex))
        else:
            await execute(store, uuid.uuid4().hex, "fp", _decide(f"s-{rng.randrange(STREAMS)}"))

    try:
        return await run_clients(clients, seconds, one)
    finally:
        await store.close()


async def bench_ganshou_group(dsn: str, clients: int, seconds: float, workers: int = 2) -> float:
    store = await PostgresEventStore.connect(dsn, min_size=workers + 2, max_size=workers + 4)
    committer = GroupCommitter(store, workers=workers)

    async def one(rng: random.Random) -> None:
        stream = f"s-{rng.randrange(STREAMS)}"
        await committer.execute(uuid.uuid4().hex, "fp", _decide(stream), key=stream)

    try:
        return await run_clients(clients, seconds, one)
    finally:
        await committer.close()
        await store.close()


async def bench_bulk(dsn: str, transactions: int, per_tx: int) -> float:
    store = await PostgresEventStore.connect(dsn)
    events = [NewEvent("ganshou.bench.v1.Happened", PAYLOAD)]
    started = time.perf_counter()
    for t in range(transactions):
        async with store.transaction() as tx:  # one event per household stream, as an import does
            await tx.append_many([StreamAppend(f"bulk-{t}-{s}", "bench", 0, events) for s in range(per_tx)])
    rate = transactions * per_tx / (time.perf_counter() - started)
    await store.close()
    return rate


async def fill_outbox(dsn: str, n: int) -> None:
    store = await PostgresEventStore.connect(dsn)
    for start in range(0, n, 1000):
        async with store.transaction() as tx:
            for i in range(start, min(n, start + 1000)):
                await tx.append(StreamAppend(f"relay-{i % 5000}", "bench", ANY_VERSION,
                                             [NewEvent("ganshou.bench.v1.Happened", PAYLOAD)]))
    await store.close()


async def bench_relay(dsn: str, n: int) -> tuple[float, float]:
    """(relay events/s, raw aiokafka producer messages/s) for n events."""
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    topics = [f"bench.relay.{uuid.uuid4().hex[:8]}", f"bench.raw.{uuid.uuid4().hex[:8]}"]
    await admin.create_topics([NewTopic(t, 6, 1) for t in topics])
    await admin.close()
    await fill_outbox(dsn, n)

    relay = OutboxRelay(dsn, KAFKA, topics[0], "bench")
    conn = await asyncpg.connect(dsn)
    producer = await new_producer(KAFKA)
    started = time.perf_counter()
    while await relay.relay_once(conn, producer):
        pass
    relay_rate = n / (time.perf_counter() - started)
    await conn.close()

    values = [os.urandom(len(PAYLOAD) + 150) for _ in range(min(n, 5000))]
    started = time.perf_counter()
    futures = [await producer.send(topics[1], values[i % len(values)], key=f"relay-{i % 5000}".encode())
               for i in range(n)]
    await asyncio.gather(*futures)
    raw_rate = n / (time.perf_counter() - started)
    await producer.stop()
    return relay_rate, raw_rate


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--tiny", action="store_true", help="prove the benchmark runs; writes nowhere")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "eventstore.json")
    args = parser.parse_args()
    seconds = 0.3 if args.tiny else args.seconds
    results: dict[str, object] = {"machine": describe(), "writers": args.writers, "seconds_each": seconds}

    async def fresh(fn, *a):
        async with fresh_database(PG_PORT) as dsn:
            await migrate(dsn)
            return await fn(dsn, *a)

    r = results
    r["plain_asyncpg_commands_per_s"] = await fresh(bench_plain_asyncpg, args.writers, seconds)
    async with fresh_database(PG_PORT) as dsn:
        r["pyeventsourcing_commands_per_s"] = await asyncio.to_thread(bench_pyeventsourcing, dsn, args.writers, seconds)
    r["ganshou_single_commands_per_s"] = await fresh(bench_ganshou_single, args.writers, seconds)
    r["ganshou_single_new_stream_commands_per_s"] = await fresh(bench_ganshou_single, args.writers, seconds, True)
    r["ganshou_group_commit_commands_per_s"] = await fresh(bench_ganshou_group, args.writers, seconds)
    r["ganshou_group_commit_64_clients_commands_per_s"] = await fresh(bench_ganshou_group, 64, seconds)
    r["bulk_events_per_s"] = await fresh(bench_bulk, 2 if args.tiny else 20, 1000)
    relay, raw = await fresh(bench_relay, 2000 if args.tiny else 100_000)
    r["relay_events_per_s"], r["raw_aiokafka_messages_per_s"] = relay, raw
    r["ratios"] = {
        "single_vs_pyeventsourcing": r["ganshou_single_commands_per_s"] / r["pyeventsourcing_commands_per_s"],
        # the same workload on both sides: each command a new aggregate's first event
        "single_new_stream_vs_pyeventsourcing":
            r["ganshou_single_new_stream_commands_per_s"] / r["pyeventsourcing_commands_per_s"],
        "group_vs_pyeventsourcing": r["ganshou_group_commit_commands_per_s"] / r["pyeventsourcing_commands_per_s"],
        "single_vs_plain_asyncpg": r["ganshou_single_commands_per_s"] / r["plain_asyncpg_commands_per_s"],
        "relay_vs_raw_producer": relay / raw,
    }
    text = json.dumps(results, indent=2, default=lambda x: round(x, 2))
    print(text)
    if not args.tiny:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    asyncio.run(main())
