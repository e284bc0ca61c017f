"""faust's Kafka consumer, fetching with a short wait.

faust builds its aiokafka consumer with fetch_max_wait_ms=1500, fixed. aiokafka keeps one
fetch in flight per broker and leaves out of it the partitions whose fetched records are
not consumed yet; so under load a fetch can hold only partitions that receive nothing (the
partner topic, the tables' changelogs, faust's assignor topic) and the broker keeps it the
full 1.5 s, while the busy partitions wait behind it. Measured (2026-11-29, whole system at
250 commands/s): the worker sat idle ~1 s every few seconds with a thousand events waiting,
figures 1–6 s late; at 150 commands/s the freshness p99 went from 1.9–6.2 s to 0.36–1.0 s
with the wait at 100 ms. An idle worker then asks the broker ten times a second.
"""

from __future__ import annotations

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_kafka

from ganshou_metrics.adapters import quick_start

FETCH_MAX_WAIT_MS = 100


class _ConsumerThread(faust_kafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: faust_kafka.Transport) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Not an argument faust passes on; the consumer's fetcher takes it when it starts.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class _Consumer(faust_kafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_kafka.Transport):
    Consumer = _Consumer
    Producer = quick_start.Producer


class App(faust.App):
    """faust.App whose consumer fetches with FETCH_MAX_WAIT_MS, and which starts without
    faust's waits for what is done already (quick_start.py)."""

    existing_topics: frozenset[str] = frozenset()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, TableManager=quick_start.TableManager, **kwargs)

    def _new_transport(self) -> _Transport:
        return _Transport(self.conf.broker_consumer, self)
