"""Read a stretch of a source partition straight from the broker, outside faust's consumer.

faust drops what it fetches while its flow is suspended (a restart's or rebalance's
recovery) and moves its read offset on, so a worker can be handed a partition's events from
thousands past the offset it resumed at. Seeking faust's consumer back does not bring them:
its fetch loop, still working through what it fetched before, sets the read offset forward
again and drops the re-fetched events as already read (faust/transport/consumer.py,
`_drain_messages`). The agent reads the missing stretch here instead and handles it before
the event that revealed it, so each stream's events are still applied in order.

The reading consumer has no group: it is assigned partitions by hand and never commits. The
group's committed offsets are asked of the broker by an admin client. (A consumer carrying the
group id for that, re-assigned from one partition to the next, now and then had aiokafka's
coordination task fail on the assignment it had just replaced, and the read with it.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from ganshou_common.kafka_config import client_kwargs


class StretchUnavailable(Exception):
    """The broker did not deliver the stretch in time (down, or the offsets are gone)."""


class PartitionReader:
    def __init__(self, bootstrap: str, group_id: str, patience_s: float = 60.0):
        self._bootstrap, self._group_id, self._patience_s = bootstrap, group_id, patience_s
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._lock = asyncio.Lock()  # one stretch at a time: the consumer's assignment is shared
        self._admin_lock = asyncio.Lock()  # the agents ask at once at start: one admin client, not one each

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None, enable_auto_commit=False,
                                        auto_offset_reset="earliest", **client_kwargs())
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def _admin_started(self) -> AIOKafkaAdminClient:
        async with self._admin_lock:
            if self._admin is None:
                admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, **client_kwargs())
                await admin.start()
                self._admin = admin
            return self._admin

    async def committed(self, topic: str, partition: int) -> int | None:
        """The group's committed offset for the partition, as the broker has it."""
        tp = TopicPartition(topic, partition)
        offsets = await (await self._admin_started()).list_consumer_group_offsets(self._group_id, partitions=[tp])
        found = offsets.get(tp)
        return found.offset if found is not None and found.offset >= 0 else None

    async def read(self, topic: str, partition: int, start: int, end: int) -> AsyncIterator[Any]:
        """The records at offsets start ≤ offset < end, in order."""
        tp = TopicPartition(topic, partition)
        async with self._lock:
            consumer = await self._started()
            consumer.assign([tp])
            consumer.seek(tp, start)
            position, last_progress = start, time.monotonic()
            while position < end:
                batch = await consumer.getmany(tp, timeout_ms=500, max_records=2000)
                for record in batch.get(tp, []):
                    if record.offset >= end:
                        return
                    position = record.offset + 1
                    last_progress = time.monotonic()
                    yield record
                position = max(position, await consumer.position(tp))
                if time.monotonic() - last_progress > self._patience_s:
                    raise StretchUnavailable(f"{topic}[{partition}] stuck at {position} of {start}..{end}")

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._admin is not None:
            await self._admin.close()
            self._admin = None
