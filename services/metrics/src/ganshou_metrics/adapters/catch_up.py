"""A new generation's first pass over the source topics, outside faust.

faust's per-message path costs ~720 µs of CPU an event here (its fetcher, conductor and
stream, and one changelog message per row written), so a rebuild through it projects under
2,000 events/s. A new generation (no committed offset in any source partition) instead
reads every partition up to its end as it is at start (bounded_fetch.py: aiokafka's
fetches without its consumer's per-record objects), folds the events into rows with the
same `apply` (the same rows faust would hold), writes each row once to its table's
changelog partition (the partition of the events it came from, as faust's co-partitioned
tables do), and only then commits each source partition's offset
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
re-checks the committed offsets once it holds it. The shares start folding before the
lock is held (taking it is a few round trips to the broker) and write only once it is. The
commit itself carries no group generation, which the broker refuses while faust's group
has members.

Shares. The fold is split by whole partitions (a stream's events, rows and changelog
partition stay together; no stream spans two topics) over n processes, one a core
(first_pass.py), each partition to the share with the fewest events so far, this process's
share lighter by the work it does besides (LIGHTER_BY), and what this one is still heavier
by halved by beginnings of its partitions the lightest folds first and hands over (leads);
each writes its own rows and hands them over with their figures as soon as they are
folded, and this process adds them to its own share's while the shares write. The pass
knows its topics by name (names.py) and needs no faust: the worker runs it before faust's
imports, and imports (and makes faust's app) while the other shares fold (the pass's
`seconds` include them). A share that fails fails the pass: nothing is committed. A share's
process dies with the worker, so no older rows land after a later pass's.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.structs import OffsetAndMetadata

from ganshou_common import logs
from ganshou_common.kafka_config import client_kwargs
from ganshou_metrics.adapters.first_pass import Folded, Share, ShareProcess, fold
from ganshou_metrics.domain.projection import Figures

if TYPE_CHECKING:  # faust's side: the pass itself runs before faust is imported
    from ganshou_metrics.adapters.tables import Tables

log = logs.get("ganshou.metrics.catch_up")


@dataclass
class Pass:
    """What one pass read and wrote."""

    events: int = 0
    rows: int = 0
    seconds: float = 0.0
    stopped_at: dict[str, int] = field(default_factory=dict)  # "topic[p]" → the refused event's offset
    figures: Figures | None = None  # of the rows it folded
    # What the tables are to hold (Tables.preload_rows): per source topic, its rows by key and
    # the keys of each changelog partition, and per changelog partition the offset of its last row.
    parts: dict[str, tuple[dict[str, bytes], dict[int, list[str]]]] = field(default_factory=dict, repr=False)
    last_offsets: dict[TopicPartition, int] = field(default_factory=dict, repr=False)
    changelogs: dict[str, str] = field(default_factory=dict)  # source topic → the changelog it wrote

    def preload(self, tables: "Tables") -> None:
        """The rows handed to the tables' stores (preloaded_store.py): faust need not read them back."""
        _same_tables(tables, self.changelogs)
        for topic, (rows, keys) in self.parts.items():
            tables.preload_rows(topic, rows, keys, self.last_offsets)
        self.parts = {}


async def _started(admin: AIOKafkaAdminClient, group_id: str, tps: list[TopicPartition],
                   patience_s: float = 60.0) -> bool:
    """Whether any source partition has an offset committed by the group: one request (the
    consumer's `committed` asks a partition at a time, 0.2–0.5 s for 18 of them here). Asked
    again while the broker has no coordinator for the group yet (a broker just started)."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            offsets = await admin.list_consumer_group_offsets(group_id, partitions=tps)
            return any(o.offset >= 0 for o in offsets.values())
        except KafkaError as exc:
            if not exc.retriable or time.monotonic() > deadline:
                raise
            log.info("catch_up_waits_for_coordinator", group=group_id, error=repr(exc))
            await asyncio.sleep(0.2)


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
                              retry_backoff_ms=10, **client_kwargs())  # the topic just created: learnt sooner
    await holder.start()
    while TopicPartition(name, 0) not in holder.assignment():
        # Drives the group's rebalances. Briefly: the topic holds no record, so each call
        # waits out its whole timeout (500 ms cost the pass ~0.3 s after the assignment).
        await holder.getmany(timeout_ms=20)
    return holder


def _holds(holder: AIOKafkaConsumer) -> bool:
    return bool(holder.assignment())


def _shares(bootstrap: str, ends: dict[TopicPartition, int], changelogs: Mapping[str, str],
            processes: int, lighter_by: int) -> list[Share]:
    """Each partition holding events to the share with the fewest events so far, the largest
    first (a stream's events, its row and its changelog partition stay in one share, and no
    stream spans two topics); the first share, this process's, starts `lighter_by` events
    behind the others. Shares may be empty."""
    shares = [Share(bootstrap, {}, dict(changelogs)) for _ in range(max(1, processes))]
    load = [lighter_by] + [0] * (len(shares) - 1)
    for tp, end in sorted(((tp, end) for tp, end in ends.items() if end > 0),
                          key=lambda held: (-held[1], held[0].topic, held[0].partition)):
        lightest = min(range(len(shares)), key=load.__getitem__)
        shares[lightest].ends[tp] = end
        load[lightest] += end
    # Whole partitions leave this share up to a partition heavier than the lightest other: the
    # beginnings of its largest ones are folded by that one first, half the difference.
    if len(shares) > 1:
        lightest = min(range(1, len(shares)), key=load.__getitem__)
        move = (load[0] - load[lightest]) // 2
        for tp, end in sorted(shares[0].ends.items(), key=lambda held: -held[1]):
            lead = min(move, end - 1)
            if lead <= 0:
                break
            shares[lightest].leads[tp] = shares[0].starts[tp] = lead
            move -= lead
    return shares


# This process's share is lighter by the work it does besides folding (faust's imports and
# app, ~1.2 s of a core here), in events' worth of folding while the shares fold side by side
# (~8 µs an event of the wall clock), so that the shares end together. A pass of a million
# events in six partitions splits three and three, the other share folding the first 75,000
# events of one of this one's before its own (three and three alone left the other process
# idle ~1.2 s at the end, two and four this one 2.5 s); the pipeline's few, in eighteen
# partitions, go mostly to the other.
LIGHTER_BY = 150_000


async def _fold_shares(mine: Share, others: Sequence[tuple[ShareProcess, Share]]) -> list[Folded]:
    """The first share folded here (on from the leads the others fold first), the others in
    their processes, each process's rows added to this one's as they come (before either
    share is written: the merge of half a million rows, ~0.2 s, is then not left for after
    the last write)."""
    loop = asyncio.get_running_loop()
    own: asyncio.Future[dict[str, dict[str, bytes]]] = loop.create_future()
    leads = {process: loop.create_future() for process, share in others if share.leads}

    async def adopt(keys: dict[str, dict[int, list[str]]], values: dict[str, dict[int, list[bytes]]]) -> None:
        rows = await own  # this share's rows, once final
        for topic, parts in values.items():
            table = rows.setdefault(topic, {})
            for p, held in parts.items():
                table.update(zip(keys[topic][p], held))

    async def fold_mine() -> Folded:
        if not mine.ends:  # all in the other processes (a small pass): their rows added to none
            nothing = Folded()
            own.set_result(nothing.rows)
            return nothing
        try:
            return await fold(mine, lambda done: own.set_result(done.rows), [await led for led in leads.values()])
        finally:
            if not own.done():  # failed: nothing to add the others' rows to
                own.cancel()

    return list(await asyncio.gather(fold_mine(), *(
        process.folded(adopt, leads[process].set_result if process in leads else lambda led: None)
        for process, _ in others)))


def _same_tables(tables: Tables, changelogs: Mapping[str, str]) -> None:
    """The tables faust declares are those the pass wrote (names.py), in the form it wrote."""
    if not set(changelogs) <= set(tables.topics()) or any(tables.changelog(t) != c for t, c in changelogs.items()):
        raise ValueError(f"the first pass wrote to {dict(changelogs)}, not to the tables' changelogs")
    if not all(tables.plain(t) for t in tables.topics()):
        raise ValueError("the first pass writes keys as faust's json codec and rows as their bytes")


async def catch_up(bootstrap: str, group_id: str, changelogs: Mapping[str, str], partitions: int,
                   spawned: Sequence[ShareProcess] = (), meanwhile: Callable[[], None] = lambda: None,
                   changelogs_made: Awaitable[object] | None = None, lighter_by: int = LIGHTER_BY) -> Pass | None:
    """Pass over the source topics (`changelogs`: source topic → its table's changelog, which
    must exist, or be made by `changelogs_made`, awaited before any row is written) when this
    generation has not started yet, its rows for the tables (`Pass.preload`); None when it
    has (faust goes on from its committed offsets). The pass's first share is folded here,
    the others in the `spawned` processes (first_pass.py), each dismissed once done.
    `meanwhile` is called once, blocking: once the other shares are handed out (the worker
    imports faust while they fold), or when there is no pass."""
    try:
        return await _catch_up(bootstrap, group_id, changelogs, partitions, spawned, meanwhile, changelogs_made,
                               lighter_by)
    finally:
        for process in spawned:
            process.dismiss()


async def _catch_up(bootstrap: str, group_id: str, changelogs: Mapping[str, str], partitions: int,
                    spawned: Sequence[ShareProcess], meanwhile: Callable[[], None],
                    changelogs_made: Awaitable[object] | None, lighter_by: int) -> Pass | None:
    tps = [TopicPartition(t, p) for t in changelogs for p in range(partitions)]
    # A short retry backoff: the end offsets are asked before any metadata of the topics is
    # known, and aiokafka learns a topic a retry at a time (3 × 100 ms by default).
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False,
                                auto_offset_reset="earliest", retry_backoff_ms=10, **client_kwargs())
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_kwargs())
    await consumer.start()
    await admin.start()
    holder = None
    try:
        if await _started(admin, group_id, tps):
            meanwhile()
            return None
        started, done = time.monotonic(), Pass()
        ends = await consumer.end_offsets(tps)
        shares = _shares(bootstrap, ends, changelogs, 1 + len(spawned), lighter_by)
        # The other shares to their processes at once: they fold while this one takes the lock
        # and imports faust (~1 s of one core), and write once the lock is held.
        given = list(zip(spawned, [share for share in shares[1:] if share.ends or share.leads]))
        for process, share in given:
            process.give(share)
        log.info("catch_up_started", group=group_id, events_at_most=sum(ends.values()),
                 processes=1 + len(given), events_here=sum(shares[0].ends.values()) - sum(shares[0].starts.values()))
        holder = await _lock(bootstrap, group_id)
        if await _started(admin, group_id, tps):
            meanwhile()
            return None  # another worker passed while this one waited for the lock: nothing written
        if changelogs_made is not None:
            await changelogs_made
        for process in spawned:
            process.allow_write()
        # The pass only adds objects, none in cycles; the collector's full passes over a
        # growing million rows doubled its time. Off for the pass; after it, the rows are
        # frozen (never scanned again: faust's worker then collects only what is new).
        gc.disable()
        try:
            meanwhile()  # then the first share here (its rows need no copy back)
            folded = await _fold_shares(shares[0], given)
        finally:
            gc.freeze()
            gc.enable()
        if not _holds(holder):
            raise RuntimeError("catch-up lock lost before its commit: nothing committed")
        stop, last_offsets, figures = dict(ends), {}, Figures()
        for f in folded:
            stop.update(f.stop)
            last_offsets.update(f.last_offsets)
            done.events += f.events
            done.stopped_at.update(f.stopped_at)
            figures.absorb(f.figures)
        consumer.assign(tps)  # aiokafka commits only assigned partitions
        await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in stop.items()})
        for topic in changelogs:  # the shares' partitions are disjoint: a key in one of them
            rows: dict[str, bytes] = {}
            keys: dict[int, list[str]] = {}
            for f in folded:  # this process's share first, the others' rows added to its own
                rows = f.rows.get(topic, rows)
                keys.update(f.keys.get(topic, {}))
            done.parts[topic] = (rows, keys)
            done.rows += len(rows)
        done.last_offsets, done.changelogs = last_offsets, dict(changelogs)
        done.figures = figures
        done.seconds = time.monotonic() - started
        log.info("catch_up_done", group=group_id, events=done.events, rows=done.rows,
                 seconds=round(done.seconds, 1), processes=len(shares),
                 events_per_s=round(done.events / max(done.seconds, 1e-6)), stopped_at=done.stopped_at)
        return done
    finally:
        if holder is not None:
            await holder.stop()
        await admin.close()
        await consumer.stop()
