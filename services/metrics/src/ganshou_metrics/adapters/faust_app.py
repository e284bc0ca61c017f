"""The faust-streaming app: one agent per source topic, one table per topic holding one
row per stream (its last applied version and its state), backed by a changelog topic.

Exactness: each event costs one table write (the row, version included), so the
dedupe marker and the contribution can never drift apart after a crash; a source offset
is committed only once every event below it is durable: handled, and its changelog write
acknowledged by the broker (processed_offsets.py); events faust's stream passes over are
read again from the broker before the next one (partition_reader.py). The figures are kept
in memory as sums of the rows' facts and recomputed from the tables after every recovery
or rebalance.
faust's exactly_once is not relied on.

With several workers, each owns some partitions and its figures cover those; this
deployment runs one active worker (see docs/design.md).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable, Sequence
from functools import partial
from itertools import chain

import faust
from aiokafka.errors import KafkaError
from google.protobuf.message import DecodeError
from prometheus_client import Counter

from ganshou_common import logs
from ganshou_common.kafka_config import faust_credentials
from ganshou_common.schemas import load_all_schemas
from ganshou_common.consumer import DEAD_LETTERS
from ganshou_common.envelopes import PoisonMessage, decode
from ganshou_common.sense import Nonsense, checked_payload
from ganshou_common.topics import dead_letter_topic
from ganshou_metrics.adapters import names
from ganshou_metrics.adapters.catch_up import LIGHTER_BY, Pass, catch_up
from ganshou_metrics.adapters.changelog_topics import ensure_changelogs
from ganshou_metrics.adapters.changelog_writer import send_row
from ganshou_metrics.adapters.first_pass import ShareProcess
from ganshou_metrics.adapters.partition_reader import PartitionReader, StretchUnavailable
from ganshou_metrics.adapters.preloaded_store import NAME as PRELOADED
from ganshou_metrics.adapters.preloaded_store import intact
from ganshou_metrics.adapters.prompt_fetch import App
from ganshou_metrics.adapters.processed_offsets import ProcessedOffsets, commit_only_processed
from ganshou_metrics.adapters.reload import Reloaded, reload
from ganshou_metrics.adapters.row_codec import counted_rows, decode_row, encode_row
from ganshou_metrics.adapters.tables import Tables
from ganshou_metrics.domain.projection import Figures, apply

log = logs.get("ganshou.metrics")
PROJECTED = Counter("ganshou_metrics_projection_events_total", "Events seen by the projection, by outcome",
                    ["topic", "outcome"])
SKIPPED_READ_AGAIN = Counter("ganshou_metrics_offsets_read_again_total",
                             "Source events faust's stream passed over, read again from the broker", ["topic"])


class Projection:
    """The faust app and the live figures it keeps."""

    def __init__(self, broker: str, generation: str = "1", partitions: int = 6,
                 topics: dict[str, str] | None = None):
        load_all_schemas()
        self.figures = Figures()
        self.partitions = partitions
        self.changed = asyncio.Event()
        self.generation, self.topic_overrides = generation, dict(topics or {})
        self.app = App(  # faust's, fetching promptly (prompt_fetch.py)
            names.app_id(generation), broker=f"kafka://{broker}", store="memory://",
            topic_partitions=partitions, web_enabled=False,
            # faust keeps a data directory; never in the working directory (a checkout, or a
            # read-only container root).
            datadir=os.path.join(os.environ.get("METRICS_DATA_DIR", tempfile.gettempdir()), "{conf.name}-data"),
            topic_replication_factor=1, table_standby_replicas=0, consumer_auto_offset_reset="earliest",
            stream_wait_empty=False, producer_acks=-1,
            # Changelog writes wait up to 10 ms to go in one produce request with the next ones
            # (aiokafka sends each at once by default: a request an event under load). Only the
            # source offsets' commits wait for them; the figures change when an event is applied.
            producer_linger=0.01,
            # A worker that dies (kill -9) leaves the group after 10 s rather than 60, so its
            # replacement takes over its partitions quickly.
            broker_session_timeout=10.0, broker_heartbeat_interval=2.0, broker_rebalance_timeout=20.0,
            broker_credentials=faust_credentials(),
            # No task runs on the leader only: no leader topic, which faust would otherwise
            # create at every start (~0.03 s after a rebuild's pass) and fetch from for ever.
            topic_disable_leader=True,
        )
        self.tables: dict[str, faust.Table] = {}
        self.table_of: dict[str, faust.Table] = {}  # source topic → its table
        self.processed = ProcessedOffsets()
        self.reader = PartitionReader(broker, self.app.conf.id)
        self._unacknowledged: dict[str, asyncio.Future] = {}  # stream → its row's write on its way
        self.source_topics: set[str] = set()
        self._guarded = False
        self._recompute_due = False
        self._pass_figures: Figures | None = None  # a first pass's, until faust's first recovery
        self.consumer_name = f"metrics-g{generation}"
        self.dead_letters = self.app.topic(dead_letter_topic("metrics"), key_type=bytes, value_type=bytes,
                                           value_serializer="raw", key_serializer="raw")
        for service, name in names.source_topics(topics).items():
            self.source_topics.add(name)
            topic = self.app.topic(name, key_type=bytes, value_type=bytes, value_serializer="raw",
                                   key_serializer="raw", partitions=partitions)
            # faust's memory store, which a first pass can fill (a URL of a scheme alone is falsy to faust).
            table = self.app.Table(names.table_name(service), default=None, partitions=partitions, key_type=str,
                                   value_type=bytes, on_recover=self._recompute, store=f"{PRELOADED}://rows")
            self.tables[service] = table
            self.table_of[name] = table
            self.app.agent(topic, name=f"project-{service}")(self._agent(service, name, table))
        self._rows = Tables(self.table_of)  # how a row's changelog message is serialised; the first pass's tables
        # Not on_rebalance_complete too: faust ends every recovery with the tables' on_recover
        # callbacks, after its store has dropped revoked partitions' rows; a second pass over
        # a million rows cost 8 s.
        self.app.on_partitions_revoked.connect(self._forget_offsets)

    def _agent(self, service: str, topic: str, table: faust.Table) -> Callable:
        async def project(stream):
            self._guard_commits()
            async for event in stream.events():
                msg = event.message  # its topic, partition, offset and raw key and value
                committed = self.app.consumer._committed_offset.get(msg.tp)
                if committed is None and not self.processed.knows(msg.tp):
                    # faust can deliver a partition's first events before it has read the
                    # committed offset back: ask the broker (else the floor would take 0).
                    committed = await self._committed_by_broker(msg)
                skipped = self.processed.received(msg.tp, msg.offset, committed)
                if skipped:
                    await self._read_again(msg, msg.offset - skipped, topic, table)
                await self._handle(msg, msg.tp, topic, table)
        project.__name__ = f"project_{service.replace('-', '_')}"
        return project

    async def _committed_by_broker(self, msg) -> int | None:
        """Asked until the broker answers: nothing can be placed safely before it does."""
        while True:
            try:
                return await self.reader.committed(msg.topic, msg.partition)
            except KafkaError as exc:
                log.warning("committed_offset_unknown", topic=msg.topic, partition=msg.partition, error=repr(exc))
                await asyncio.sleep(1.0)

    async def _handle(self, source, tp, topic: str, table: faust.Table) -> None:
        """Project one source record (faust's message or aiokafka's record: both carry its
        topic, partition, offset and raw key and value) and track its offset."""
        written = await self._project(source, topic, table)
        if written is None:
            self.processed.done(tp, source.offset)
        else:  # committable once the broker has it (a failed write never is)
            written.add_done_callback(partial(self._written, tp, source.offset))

    async def _read_again(self, msg, start: int, topic: str, table: faust.Table) -> None:
        """The stream passed over offsets start..msg.offset-1 (faust dropped them): read them
        from the broker and handle them first (partition_reader.py)."""
        log.warning("source_offsets_skipped", topic=msg.topic, partition=msg.partition, before=msg.offset,
                    count=msg.offset - start)
        count = 0
        try:
            async for record in self.reader.read(msg.topic, msg.partition, start, msg.offset):
                await self._handle(record, msg.tp, topic, table)
                count += 1
        except (StretchUnavailable, KafkaError) as exc:
            # Not lost: the floor holds the partition's commits before them, so a restarted
            # worker reads them; until then their streams' later events are dead-lettered.
            log.error("source_offsets_not_read_again", topic=msg.topic, partition=msg.partition, start=start,
                      end=msg.offset, read=count, error=repr(exc))
            return
        SKIPPED_READ_AGAIN.labels(msg.topic).inc(count)
        log.info("source_offsets_read_again", topic=msg.topic, partition=msg.partition, start=start,
                 end=msg.offset, read=count)

    def _acknowledged(self, key: str, fut: asyncio.Future) -> None:
        # A failed write stays: the row is not durable, so neither is any event seen again.
        if self._unacknowledged.get(key) is fut and not fut.cancelled() and fut.exception() is None:
            del self._unacknowledged[key]

    def _written(self, tp, offset: int, fut: asyncio.Future) -> None:
        if not fut.cancelled() and fut.exception() is None:
            self.processed.done(tp, offset)

    async def _project(self, source, topic: str, table: faust.Table) -> asyncio.Future | None:
        """Apply one event; the write its offset must wait for (its row's changelog
        message, or its dead letter), None when it wrote nothing."""
        try:
            env = decode(source.value)
            msg = checked_payload(env)
            key = env.stream_id
            old = decode_row(table.get(key))  # rows are held as their JSON (row_codec.py)
            new = apply(old, env, msg)
        except (Nonsense, PoisonMessage) as exc:
            return await self._dead_letter(source, topic, exc.reason, exc.detail)
        except (DecodeError, KeyError, ValueError, TypeError) as exc:
            return await self._dead_letter(source, topic, "rejected_by_projection", f"{type(exc).__name__}: {exc}")
        if new is None:
            PROJECTED.labels(topic, "duplicate").inc()
            # Seen again after a rebalance's seek-back: durable once the row's last write is.
            return self._unacknowledged.get(key)
        # The one durable write for this event. What `table[key] = new` does, keeping the
        # changelog message's future (resolved when the broker acknowledges it); sent past
        # faust's buffer (changelog_writer.py).
        value = encode_row(new)
        written = await send_row(self.app.producer._ensure_producer(), table.changelog_topic_name,
                                 table.partition_for_key(key), *self._rows.serialise(topic, key, value))
        table.data[key] = value
        self._unacknowledged[key] = written
        written.add_done_callback(partial(self._acknowledged, key))
        self.figures.replace(old, new)
        self.figures.events += 1
        PROJECTED.labels(topic, "applied").inc()
        self.changed.set()
        return written

    def _guard_commits(self) -> None:
        if not self._guarded:  # once, when the first agent starts (the consumer exists by then)
            commit_only_processed(self.app.consumer, self.processed, self.source_topics)
            self._guarded = True

    async def _forget_offsets(self, *args, **kwargs) -> None:
        self.processed.forget()

    async def _dead_letter(self, source, topic: str, reason: str, detail: str) -> asyncio.Future:
        """Poison: recorded on the dead-letter topic with its reason and counted; the
        projection goes on with the next event."""
        PROJECTED.labels(topic, "dead_lettered").inc()
        DEAD_LETTERS.labels(self.consumer_name, reason).inc()
        msg = source
        log.warning("dead_lettered", consumer=self.consumer_name, reason=reason, detail=detail, topic=msg.topic,
                    partition=msg.partition, offset=msg.offset)
        headers = [("reason", reason.encode()), ("detail", detail[:1000].encode()),
                   ("consumer", self.consumer_name.encode()), ("source_topic", msg.topic.encode()),
                   ("source_partition", str(msg.partition).encode()), ("source_offset", str(msg.offset).encode())]
        # Sent now (force), not attached to the offset's commit: the offset waits for it.
        return await self.dead_letters.send(key=msg.key, value=msg.value or b"", headers=headers, force=True)

    def changelogs(self) -> dict[str, str]:
        """Source topic → its table's changelog (as names.py derives it, without faust)."""
        return names.changelogs(self.generation, self.topic_overrides)

    async def catch_up(self, bootstrap: str, spawned: Sequence[ShareProcess] = (),
                       lighter_by: int = LIGHTER_BY) -> Pass | Reloaded:
        """A new generation's first pass outside faust (catch_up.py; its other shares in the
        `spawned` processes), or a started generation's rows read back from its changelogs
        (reload.py). The worker's start (`__main__.py`) runs the pass before it makes this
        projection, faust's imports in the middle of it."""
        done = await catch_up(bootstrap, self.app.conf.id, self.changelogs(), self.partitions, spawned,
                              lighter_by=lighter_by)
        return self.passed(done) if done is not None else await self.reload(bootstrap)

    def passed(self, done: Pass) -> Pass:
        """A first pass's rows into the tables, its figures kept for when faust's first
        recovery leaves the rows as they are."""
        done.preload(self._rows)
        PROJECTED.labels("catch-up", "applied").inc(done.events)
        self._pass_figures = done.figures
        return done

    async def reload(self, bootstrap: str) -> Reloaded:
        return await reload(bootstrap, self._rows, self.partitions)

    async def ensure_changelogs(self, bootstrap: str) -> None:
        """The tables' changelog topics created (changelog_topics.py) and known to faust, which
        need not declare them."""
        self.knows(await ensure_changelogs(bootstrap, self.changelogs().values(), self.partitions))

    def knows(self, topics: set[str]) -> None:
        """Topics the broker has: faust need not declare them."""
        self.app.existing_topics = frozenset(topics)

    async def _recompute(self, *args, **kwargs) -> None:
        # faust calls this after each table's recovery, the tables side by side; a pass over a
        # million rows takes seconds, so the burst gets one, after its last call.
        if not self._recompute_due:
            self._recompute_due = True
            asyncio.get_running_loop().call_soon(self._recompute_now)

    def _recompute_now(self) -> None:
        self._recompute_due = False
        figures, self._pass_figures = self._pass_figures, None
        if figures is not None and all(intact(table.data) for table in self.tables.values()):
            # The first recovery after a first pass, which read nothing back and dropped no
            # rows: the pass's figures are those of the rows (a recompute took 3.4 s a million).
            self.figures = figures
            self.changed.set()
            log.info("figures_from_first_pass", events=figures.events)
            return
        streams = distinct = 0

        def counted():  # the decoded rows one at a time: a list would hold a million at once
            nonlocal streams, distinct
            for row, n in counted_rows(chain.from_iterable(table.values() for table in self.tables.values())):
                streams, distinct = streams + n, distinct + 1
                yield row, n

        self.figures = Figures.from_counted(counted())
        self.changed.set()
        log.info("figures_recomputed", streams=streams, distinct_rows=distinct)
