"""Read partitions from their start up to given ends, as record batches: the first pass's
reading of the source topics (first_pass.py) and a restart's of the changelogs (reload.py),
with aiokafka's client, fetch requests and record batches but without its consumer.

aiokafka's consumer wraps every record in a ConsumerRecord (its key and value sizes, its
headers as a tuple) through Python generators: 1.9 s of CPU a million records here, against
0.75 s reading the same batches this way, where the pass takes only each record's offset
and value. A bounded read needs little of a consumer: no group, no position to keep after
it, no reset policy (a partition whose first events are gone is an error: the pass must not
start past them). Each batch's CRC is checked, control batches are skipped, and the next
fetch is sent before the records of the last one are handed out, so the broker answers while
the pass folds.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiokafka import TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.memory_records import MemoryRecords

from ganshou_common import logs
from ganshou_common.kafka_config import client_kwargs

log = logs.get("ganshou.metrics.bounded_fetch")

PARTITION_BYTES = 4 * 1024 * 1024  # a fetch's bytes from one partition at most (a batch is whole even if larger)
FETCH_BYTES = 32 * 1024 * 1024


class FetchFailed(Exception):
    """A partition cannot be read from its start: the pass must not go on without it."""


class BoundedFetch:
    """`async for tp, batches, first in fetch`: each partition's record batches in order, from
    its start (offset 0, or as given in `starts`) until its end; `first` is the offset the
    fetch asked for (a batch may begin before it: records below it are not the read's). A
    partition is fetched until a batch reaches its end, or until `drop(tp)`."""

    def __init__(self, bootstrap: str, ends: Mapping[TopicPartition, int],
                 starts: Mapping[TopicPartition, int] | None = None, patience_s: float = 60.0):
        self._bootstrap, self._patience_s = bootstrap, patience_s
        starts = starts or {}
        self._position = {tp: starts.get(tp, 0) for tp, end in ends.items() if end > starts.get(tp, 0)}
        self._ends = dict(ends)
        self._client: AIOKafkaClient | None = None

    async def start(self) -> None:
        self._client = AIOKafkaClient(bootstrap_servers=self._bootstrap, retry_backoff_ms=10, **client_kwargs())
        await self._client.bootstrap()
        for topic in {tp.topic for tp in self._position}:
            self._client.add_topic(topic)
        await self._client.force_metadata_update()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def drop(self, tp: TopicPartition) -> None:
        """No more of this partition (the pass stopped it)."""
        self._position.pop(tp, None)

    async def __aiter__(self) -> AsyncIterator[tuple[TopicPartition, list[Any], int]]:
        assert self._client is not None, "start() first"
        pending: dict[int, asyncio.Future] = {}  # node → its fetch in flight
        progress = time.monotonic()
        try:
            while self._position or pending:
                for node, request in self._requests(exclude=set(pending)).items():
                    pending[node] = asyncio.ensure_future(self._client.send(node, request))
                if not pending:  # no leader known for what is left
                    progress = await self._retry(progress, "no leader known")
                    continue
                done, _ = await asyncio.wait(pending.values(), return_when=asyncio.FIRST_COMPLETED)
                for node in [n for n, f in pending.items() if f in done]:
                    future = pending.pop(node)
                    try:
                        response = future.result()
                    except kafka_errors.KafkaError as exc:
                        if not exc.retriable:
                            raise FetchFailed(f"fetch from broker {node} failed: {exc!r}") from exc
                        progress = await self._retry(progress, repr(exc))
                        continue
                    got, trouble = self._take(response)
                    if trouble:  # a leader moved, say: asked again after a while
                        progress = await self._retry(progress, trouble)
                    # The next fetch goes out before these records are folded.
                    for n, request in self._requests(exclude=set(pending)).items():
                        pending[n] = asyncio.ensure_future(self._client.send(n, request))
                    if got:
                        progress = time.monotonic()
                    for item in got:
                        yield item
        finally:
            for future in pending.values():
                future.cancel()

    def _requests(self, exclude: set[int]) -> dict[int, FetchRequest]:
        by_node: dict[int, dict[str, list[tuple[int, int, int]]]] = defaultdict(lambda: defaultdict(list))
        for tp, position in self._position.items():
            leader = self._client.cluster.leader_for_partition(tp)
            if leader is None or leader < 0:
                self._client.force_metadata_update()
                continue
            if leader not in exclude:
                by_node[leader][tp.topic].append((tp.partition, position, PARTITION_BYTES))
        # read_uncommitted, as the consumer reads by default (the relay's producers are idempotent,
        # not transactional)
        return {node: FetchRequest(500, 1, FETCH_BYTES, 0, list(topics.items())) for node, topics in by_node.items()}

    def _take(self, response: Any) -> tuple[list[tuple[TopicPartition, list[Any], int]], str]:
        """The batches of each partition in the response, positions moved past them; and what
        went wrong that a later fetch may not meet."""
        out, trouble = [], ""
        for topic, partitions in response.topics:
            for partition, error_code, highwater, *rest in partitions:
                tp = TopicPartition(topic, partition)
                first = self._position.get(tp)
                if first is None:  # dropped meanwhile
                    continue
                error = kafka_errors.for_code(error_code)
                if error is not kafka_errors.NoError:
                    if error is kafka_errors.OffsetOutOfRangeError:
                        raise FetchFailed(f"{topic}[{partition}] no longer holds offset {first}: its first "
                                          f"events are gone (retention), so a pass cannot rebuild from them")
                    if not error.retriable:
                        raise FetchFailed(f"{topic}[{partition}] at {first}: {error.__name__}")
                    trouble = f"{topic}[{partition}]: {error.__name__}"
                    continue
                records, batches, position = MemoryRecords(rest[-1]), [], first
                while records.has_next():
                    batch = records.next_batch()
                    if batch is None:  # a partial batch at the end of the fetch's bytes
                        break
                    if not batch.validate_crc():
                        raise FetchFailed(f"{topic}[{partition}] holds a corrupt batch at {batch.base_offset}")
                    position = max(position, batch.next_offset)
                    if not batch.is_control_batch:
                        batches.append(batch)
                end = self._ends[tp]
                if position >= end or (position == first and highwater <= first):
                    del self._position[tp]  # read to its end (or nothing is left below it)
                else:
                    self._position[tp] = position
                if batches:
                    out.append((tp, batches, first))
        return out, trouble

    async def _retry(self, progress: float, why: str) -> float:
        if time.monotonic() - progress > self._patience_s:
            raise FetchFailed(f"no progress for {self._patience_s:.0f} s: {why}")
        log.info("bounded_fetch_retries", error=why)
        await self._client.force_metadata_update()
        await asyncio.sleep(0.1)
        return progress
