"""Idempotent consumers for the cross-service reactions (demand → case, help requested →
offering matched).

Each event is applied in a transaction of the consuming service's own store that also
claims (consumer, stream id, version): an event seen twice, after a redelivery, a crash
between commit and offset commit, or a rebalance, has no second effect. Offsets are
committed after the transactions, so nothing is skipped. The events of one fetch from one
partition are applied in order in one transaction (a commit, and the writes kept for its
end, shared by up to BATCH events); when any of them fails, the transaction leaves nothing
and each event is applied again in its own, where a poison one is told apart.

Poison messages (bytes that are not an envelope, a type no schema knows, a payload that
makes no sense (ganshou_common.sense) or that the handler rejects) go to the dead-letter topic with the reason and are counted; the
consumer keeps going. An outage (database, broker) is retried, never dead-lettered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import CommitFailedError, IllegalStateError
from google.protobuf.message import DecodeError
from prometheus_client import Counter, Gauge

from ganshou.common.v1 import envelope_pb2
from ganshou_common import logs
from ganshou_common.errors import DomainError
from ganshou_common.envelopes import PoisonMessage, decode
from ganshou_common.eventstore.model import EventStore, Transaction
from ganshou_common.kafka_config import client_kwargs
from ganshou_common.outages import OUTAGES
from ganshou_common.schemas import load_all_schemas
from ganshou_common.sense import Nonsense, checked_payload

Handler = Callable[[Transaction, envelope_pb2.EventEnvelope], Awaitable[None]]

APPLIED = Counter("ganshou_consumer_events_total", "Events seen by a consumer, by outcome",
                  ["consumer", "outcome"])
DEAD_LETTERS = Counter("ganshou_consumer_dead_letters_total", "Poison messages sent to the dead-letter topic",
                       ["consumer", "reason"])
LAG = Gauge("ganshou_consumer_lag_events", "Messages on the topic not yet consumed",
            ["consumer", "topic", "partition"])

log = logs.get("ganshou.consumer")

BATCH = 50  # events of one partition's fetch applied in one transaction


class IdempotentConsumer:
    def __init__(
        self,
        name: str,
        store: EventStore,
        bootstrap: str,
        topics: list[str],
        handlers: Mapping[str, Handler],
        dead_letter_topic: str,
        group_id: str = "",
    ):
        self.group_id = group_id or name
        self.name, self.store, self.bootstrap, self.topics = name, store, bootstrap, topics
        self.handlers, self.dead_letter_topic = handlers, dead_letter_topic
        self._stopping = asyncio.Event()
        load_all_schemas()  # so a known type this consumer ignores is not taken for poison

    def stop(self) -> None:
        self._stopping.set()

    async def apply_batch(self, values: list[bytes | None]) -> list[str] | None:
        """Apply messages in order in one transaction; their outcomes, or None when any of
        them failed (poison, an outage, a conflict): then nothing of them was written."""
        todo: list[tuple[int, envelope_pb2.EventEnvelope, Handler]] = []
        outcomes = ["ignored"] * len(values)
        try:
            for i, value in enumerate(values):
                env = decode(value)
                handler = self.handlers.get(env.event_type)
                if handler is not None:
                    checked_payload(env)
                    todo.append((i, env, handler))
            if todo:
                async with self.store.command() as tx:
                    for i, env, handler in todo:
                        if await tx.claim(self.name, env.stream_id, env.stream_version):
                            await handler(tx, env)
                            outcomes[i] = "applied"
                        else:
                            outcomes[i] = "duplicate"
        except Exception:  # noqa: BLE001 - told apart event by event (apply), where each outcome is handled
            return None
        return outcomes

    async def apply(self, value: bytes | None) -> str:
        """Apply one message; returns the outcome. Raises PoisonMessage for a bad one."""
        env = decode(value)
        handler = self.handlers.get(env.event_type)
        if handler is None:
            return "ignored"
        try:
            checked_payload(env)
        except Nonsense as exc:
            raise PoisonMessage(exc.reason, exc.detail) from None
        try:
            # A command's transaction: the handler's appends and kept read-model rows are
            # written by one statement at its end (PostgresCommand).
            async with self.store.command() as tx:
                if not await tx.claim(self.name, env.stream_id, env.stream_version):
                    return "duplicate"
                await handler(tx, env)
        except (DomainError, ValueError, DecodeError) as exc:
            raise PoisonMessage("rejected_by_handler", f"{env.event_type} {env.stream_id}@{env.stream_version}: {exc}") from None
        return "applied"

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            *self.topics, bootstrap_servers=self.bootstrap, group_id=self.group_id, enable_auto_commit=False,
            auto_offset_reset="earliest", max_poll_records=500,
            # The broker answers a fetch once 64 KiB are there or 50 ms have passed: under load,
            # fewer and fuller fetches (the broker's CPU); idle, at most 50 ms later.
            fetch_min_bytes=64 * 1024, fetch_max_wait_ms=50, **client_kwargs(),
        )
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True,
                                    **client_kwargs())
        await consumer.start()
        await producer.start()
        try:
            while not self._stopping.is_set():
                batch = await consumer.getmany(timeout_ms=500)
                for tp, records in batch.items():
                    for start in range(0, len(records), BATCH):
                        await self._handle_batch(records[start:start + BATCH], producer)
                    hw = consumer.highwater(tp)
                    if hw is not None:
                        LAG.labels(self.name, tp.topic, str(tp.partition)).set(max(0, hw - records[-1].offset - 1))
                if batch:
                    try:
                        await consumer.commit()
                    except (CommitFailedError, IllegalStateError) as exc:
                        # The group moved on while this batch was applied (the process paused past
                        # its session: a starved core, a long GC): the partitions' next owner reads
                        # from the last commit and the claims skip what this batch applied. A
                        # reason to rejoin (getmany does), not to stop.
                        log.warning("consumer_commit_refused", consumer=self.name, error=str(exc))
        finally:
            await consumer.stop()
            await producer.stop()

    async def _handle_batch(self, records: list[ConsumerRecord], producer: AIOKafkaProducer) -> None:
        outcomes = await self.apply_batch([r.value for r in records]) if len(records) > 1 else None
        if outcomes is None:
            for record in records:
                await self._handle(record, producer)
            return
        for outcome in outcomes:
            APPLIED.labels(self.name, outcome).inc()

    async def _handle(self, record: ConsumerRecord, producer: AIOKafkaProducer) -> None:
        while True:
            try:
                outcome = await self.apply(record.value)
                APPLIED.labels(self.name, outcome).inc()
                return
            except PoisonMessage as poison:
                await self._dead_letter(record, poison, producer)
                return
            except (*OUTAGES, asyncpg.TransactionRollbackError) as exc:
                # An outage (or a serialisation conflict), not a bad message: wait and try
                # the same message again.
                log.warning("consumer_retrying", consumer=self.name, error=str(exc))
                await asyncio.sleep(1.0)
            except Exception as exc:  # noqa: BLE001 - a bug on one message must not stop all the others
                log.exception("consumer_handler_failed", consumer=self.name)
                await self._dead_letter(record, PoisonMessage("handler_failed", f"{type(exc).__name__}: {exc}"),
                                        producer)
                return

    async def _dead_letter(self, record: ConsumerRecord, poison: PoisonMessage, producer: AIOKafkaProducer) -> None:
        DEAD_LETTERS.labels(self.name, poison.reason).inc()
        APPLIED.labels(self.name, "dead_lettered").inc()
        log.warning("dead_lettered", consumer=self.name, reason=poison.reason, detail=poison.detail,
                    topic=record.topic, partition=record.partition, offset=record.offset)
        headers = [
            ("reason", poison.reason.encode()), ("detail", poison.detail[:1000].encode()),
            ("consumer", self.name.encode()), ("source_topic", record.topic.encode()),
            ("source_partition", str(record.partition).encode()), ("source_offset", str(record.offset).encode()),
        ]
        await producer.send_and_wait(self.dead_letter_topic, record.value or b"", key=record.key, headers=headers)
