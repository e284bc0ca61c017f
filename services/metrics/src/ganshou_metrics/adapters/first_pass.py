"""One share of a new generation's first pass (catch_up.py): some partitions of every
source topic, each read up to a given end (or its first refused event), folded into rows
with the projection's `apply`, the rows written to their changelog partitions, and the
figures of those rows.

catch_up.py runs a share per core: one in the worker, each other in a process of its own
(ShareProcess): the fold is Python, one core's worth a process (measured 2026-11-30, a
million events: one process read and folded them in 14.8 s, two processes of half the
partitions each in 9.7 s). This module imports only what a share needs, and the processes
are forked before the worker imports faust: they fold while it does.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import multiprocessing
import marshal
import mmap
import os
import pickle
import signal
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from itertools import chain
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer, TopicPartition
from google.protobuf.message import DecodeError

from ganshou_common import logs
from ganshou_common.envelopes import PoisonMessage, decode
from ganshou_common.kafka_config import client_kwargs
from ganshou_common.sense import Nonsense, checked_payload
from ganshou_metrics.adapters.bounded_fetch import BoundedFetch
from ganshou_metrics.adapters.row_batches import row_batches
from ganshou_metrics.adapters.row_codec import counted_rows, decode_row, encode_row
from ganshou_metrics.domain.projection import Figures, apply

log = logs.get("ganshou.metrics.first_pass")


@dataclass
class Share:
    bootstrap: str
    ends: dict[TopicPartition, int]  # its source partitions, each read up to this offset
    changelogs: dict[str, str]  # source topic → its table's changelog topic
    # The beginnings of another share's partitions (its events below the offset), folded here
    # first and handed over unwritten (`Led`); in that share, where its reading of them starts.
    leads: dict[TopicPartition, int] = field(default_factory=dict)
    starts: dict[TopicPartition, int] = field(default_factory=dict)


@dataclass
class Folded:
    """What a share did (pickled back to the worker when run in a process of its own)."""

    events: int = 0
    rows: dict[str, dict[str, bytes]] = field(default_factory=dict)  # source topic → key → row
    # source topic → partition → the keys of its rows: a row's partition is that of its
    # stream's events (its changelog partition). One dict of rows a topic, not one a
    # partition: the worker merged six partitions' dicts in 0.18 s a million, two in 0.06.
    keys: dict[str, dict[int, list[str]]] = field(default_factory=dict)
    # A share's process sends its rows as lists, not as `rows`: source topic → partition →
    # the rows of its `keys` in their order. The worker adds them to its own share's dict:
    # one insertion a row, where a dict sent whole was built once in the load and again in
    # the merge (0.34-0.39 s against 0.27-0.29 for 500,000 rows).
    values: dict[str, dict[int, list[bytes]]] = field(default_factory=dict)
    stop: dict[TopicPartition, int] = field(default_factory=dict)  # source offsets to commit
    stopped_at: dict[str, int] = field(default_factory=dict)  # "topic[p]" → the refused event's offset
    last_offsets: dict[TopicPartition, int] = field(default_factory=dict)  # changelog partition → last row's
    figures: Figures = field(default_factory=Figures)


@dataclass
class Led:
    """The beginnings of some partitions another share folded for this one (`Share.leads`):
    their rows as a process sends them (`Folded.keys` and `.values`), how many events, and,
    for those stopped at a refused event, where."""

    keys: dict[str, dict[int, list[str]]]
    values: dict[str, dict[int, list[bytes]]]
    events: int
    stopped: list[tuple[str, int, int]]  # (topic, partition, offset of the refused event)
    stopped_at: dict[str, int]


async def fold_leads(share: Share) -> Led:
    """The beginnings of another share's partitions folded (neither figured nor written: they
    are that share's rows to go on from)."""
    done = Folded(stop=dict(share.leads))
    fetch = BoundedFetch(share.bootstrap, share.leads)
    await fetch.start()
    try:
        await _read(fetch, done)
    finally:
        await fetch.close()
    return Led(done.keys, _values(done), done.events,
               [(tp.topic, tp.partition, at) for tp, at in done.stop.items() if at < share.leads[tp]], done.stopped_at)


def _begun(share: Share, leads: list[Led]) -> Folded:
    """The share as the leads left it: their rows, events and stops; partitions stopped there
    are not read on."""
    done = Folded(stop=dict(share.ends))
    for led in leads:
        done.events += led.events
        for topic, parts in led.keys.items():
            rows, keys = done.rows.setdefault(topic, {}), done.keys.setdefault(topic, {})
            for p, held in parts.items():
                rows.update(zip(held, led.values[topic][p]))
                keys[p] = list(held)
        for topic, partition, at in led.stopped:
            done.stop[TopicPartition(topic, partition)] = at
        done.stopped_at.update(led.stopped_at)
    return done


def _values(done: Folded) -> dict[str, dict[int, list[bytes]]]:
    return {topic: {p: [rows[key] for key in held] for p, held in parts.items()}
            for topic, parts in done.keys.items() for rows in (done.rows[topic],)}


async def fold(share: Share, folded: Callable[[Folded], None] = lambda done: None,
               leads: Sequence[Led] = ()) -> Folded:
    """Read, fold and write the share (on from its `leads`, folded by another share); its
    rows acknowledged by the broker (acks=all). `folded` is called once the rows and their
    figures are final, before the rows are written (the worker adds other shares' rows to
    them meanwhile)."""
    done, clock = _begun(share, list(leads)), time.monotonic()
    unstopped = {tp: end for tp, end in share.ends.items() if done.stop[tp] == end}
    fetch = BoundedFetch(share.bootstrap, unstopped, starts=share.starts)
    await fetch.start()
    try:
        await _read(fetch, done)
    finally:
        await fetch.close()
    read = time.monotonic()
    done.figures = Figures.from_counted(counted_rows(chain.from_iterable(rows.values() for rows in done.rows.values())))
    figured = time.monotonic()
    folded(done)
    producer = AIOKafkaProducer(bootstrap_servers=share.bootstrap, acks="all", max_batch_size=BATCH_BYTES,
                                **client_kwargs())
    await producer.start()
    try:
        done.last_offsets = await _write(producer, share.changelogs, done.rows, done.keys)
    finally:
        await producer.stop()
    log.info("catch_up_share_done", events=done.events, read_s=round(read - clock, 1),
             figures_s=round(figured - read, 1), write_s=round(time.monotonic() - figured, 1))
    return done


async def _read(fetch: BoundedFetch, done: Folded) -> None:
    """Fold every partition up to its end (or its first refused event, left to faust, which
    dead-letters it as usual)."""
    stop = done.stop
    async for tp, batches, first in fetch:
        table = done.rows.setdefault(tp.topic, {})
        keys = done.keys.setdefault(tp.topic, {}).setdefault(tp.partition, [])
        events, refused = _fold(table, keys, batches, first, stop[tp])
        done.events += events
        if refused is not None:
            offset, exc = refused
            stop[tp] = offset
            fetch.drop(tp)
            log.warning("catch_up_partition_stopped", topic=tp.topic, partition=tp.partition,
                        offset=offset, error=repr(exc))
            done.stopped_at[f"{tp.topic}[{tp.partition}]"] = offset


def _fold(table: dict[str, bytes], keys: list[str], batches: list, first: int,
          end: int) -> tuple[int, tuple[int, Exception] | None]:
    """The records of `batches` at first ≤ offset < end applied to the rows in `table` (held as
    the tables hold them: row_codec.py), the key of each new row added to `keys`; how many,
    and the offset of the one refused and why."""
    events = 0
    for batch in batches:
        for record in batch:
            offset = record.offset
            if offset < first:
                continue
            if offset >= end:
                return events, None
            try:
                env = decode(record.value)
                msg = checked_payload(env)
                key = env.stream_id
                old = table.get(key)
                new = apply(decode_row(old) if old else None, env, msg)
            except (Nonsense, PoisonMessage, DecodeError, KeyError, ValueError, TypeError) as exc:
                return events, (offset, exc)
            events += 1
            if new is not None:
                if old is None:
                    keys.append(key)
                table[key] = encode_row(new)
    return events, None


async def _write(producer: AIOKafkaProducer, changelogs: dict[str, str], rows: dict[str, dict[str, bytes]],
                 keys: dict[str, dict[int, list[str]]]) -> dict[TopicPartition, int]:
    """Every row to its changelog partition (the partition of the events it came from, as
    faust's co-partitioned tables place it), keyed as faust's json codec writes a key; per
    changelog partition, the offset of the last row written. Rows are packed into record
    batches by hand (row_batches.py): aiokafka's per-message send costs more than the fold
    of an event."""
    last: dict[TopicPartition, int] = {}
    sent: list[tuple[TopicPartition, int, asyncio.Future]] = []
    for topic, parts in keys.items():
        table = rows[topic]
        for p, held in parts.items():
            tp = TopicPartition(changelogs[topic], p)
            for batch in row_batches(held, table, BATCH_BYTES):
                sent.append((tp, batch.record_count(), await producer.send_batch(batch, tp.topic, partition=tp.partition)))
    for tp, count, future in sent:
        meta = await future  # the batch's first offset
        last[tp] = max(last.get(tp, -1), meta.offset + count - 1)
    return last


BATCH_BYTES = 512 * 1024  # a record batch's size at most: under the broker's 1 MiB a message


# ---- a share in a process of its own -----------------------------------------------------

def _die_with_parent() -> None:
    """A share outliving a killed worker could write older rows after a later pass's
    (Linux: the kernel sends SIGKILL when the parent dies)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _serve(shares, results, rows_fd: int, worker_pid: int, service: str, level: str) -> None:
    written = 0  # in the memory file: each message's bytes after the last's

    def send(kind: bytes, message) -> None:
        # By marshal (plain lists and dicts of str and bytes), the worker loads it in a fraction
        # of pickle's time. Through a memory file, its place by the pipe: through the pipe,
        # ~50 MB of rows took 1-2 s, each 64 KB read by a thread of the worker waiting for the
        # GIL while the worker folds.
        nonlocal written
        data, at = marshal.dumps(message), -(-written // mmap.ALLOCATIONGRANULARITY) * mmap.ALLOCATIONGRANULARITY
        sent = 0
        while sent < len(data):
            sent += os.pwrite(rows_fd, memoryview(data)[sent:], at + sent)
        written = at + len(data)
        results.send_bytes(kind + b"%d %d" % (at, len(data)))

    _die_with_parent()
    if os.getppid() != worker_pid:  # the worker died before the line above took effect
        os._exit(1)
    logs.configure(service, level)
    from ganshou_common.schemas import load_all_schemas

    load_all_schemas()
    try:
        share = shares.recv()
    except EOFError:
        share = None
    if share is None:  # no share for this process: this generation has passed already
        os._exit(0)
    gc.disable()  # the fold only adds objects, none in cycles (see catch_up.py)

    def send_rows(done: Folded) -> None:
        # Sent before they are written, so that the worker loads them while this process
        # writes (after the write, loading 650,000 rows held the pass up 0.35 s).
        send(ROWS, (done.keys, _values(done)))
        os.close(rows_fd)  # the worker's descriptor keeps the file
        try:
            allowed = shares.recv() == WRITE  # once the worker holds the pass's lock
        except EOFError:
            allowed = False
        if not allowed:  # another worker of the generation passed meanwhile: nothing is written
            os._exit(0)

    async def run() -> None:
        try:
            if share.leads:  # first: the worker's share waits for them
                led = await fold_leads(share)
                send(LEAD, (led.keys, led.values, led.events, led.stopped, led.stopped_at))
            done = await fold(share, send_rows)
            done.rows, done.keys = {}, {}  # sent
            out = DONE + pickle.dumps(done, protocol=pickle.HIGHEST_PROTOCOL)  # offsets, figures
        except BaseException:  # noqa: BLE001 - reported to the worker, which fails the pass
            out = FAILED + traceback.format_exc().encode()
        results.send_bytes(out)
        results.close()
        sys.stdout.flush()
        # Sent from within the loop, and gone: nothing is left to release that the kernel
        # does not. `asyncio.run`'s own teardown after the fold took ~0.7 s, and the
        # interpreter's of half a million rows ~1 s, which the worker would wait for.
        os._exit(0)

    asyncio.run(run())
    os._exit(1)  # not reached: run() leaves the process


# What a share's process sends back, each a message of its own: the leads it folded for the
# worker's share, its rows once folded, then the rest once written; or why it failed. What it
# is told after its share: whether to write.
LEAD, ROWS, DONE, FAILED = b"L", b"R", b"D", b"F"
WRITE = "write"


class ShareProcess:
    """A process that folds one share. Forked before the worker's imports of faust and before
    any thread, so it starts with what a share needs already imported (spawned, its
    interpreter's start took ~1 s of a core); then given a share, or told to exit when the
    pass has none for it."""

    def __init__(self, service: str, level: str):
        ctx = multiprocessing.get_context("fork")
        shares, self._shares = ctx.Pipe(duplex=False)
        self._results, results = ctx.Pipe(duplex=False)
        self._rows_fd = os.memfd_create("ganshou-first-pass-rows")  # shared by the fork; freed with its last descriptor
        sys.stdout.flush()  # a forked child must not write the parent's buffered lines again
        sys.stderr.flush()
        self._process = ctx.Process(target=_serve, args=(shares, results, self._rows_fd, os.getpid(), service, level),
                                    daemon=True, name="ganshou-first-pass")
        self._process.start()
        shares.close()  # the child's ends: a dead child then reads as EOF here
        results.close()

    @classmethod
    def start(cls, n: int, service: str, level: str) -> list["ShareProcess"]:
        return [cls(service, level) for _ in range(max(0, n))]

    def give(self, share: Share) -> None:
        """The process starts folding `share` (see `folded`); it writes the rows once allowed."""
        try:
            self._shares.send(share)
        except BrokenPipeError:
            pass  # it died: `folded` says so

    def allow_write(self) -> None:
        """The rows may be written (the pass's lock is held): told before or after they are folded."""
        try:
            self._shares.send(WRITE)
        except BrokenPipeError:
            pass

    async def folded(self, adopt: Callable[[dict, dict], Awaitable[None]] | None = None,
                     led: Callable[[Led], None] = lambda led: None) -> Folded:
        """What the process folded; its failure (or death) fails the pass. The leads it folds
        for another share (`Share.leads`) come first, to `led`. Its rows come as soon as they
        are folded, before they are written: `adopt(keys, values)` is awaited with them then
        (the result's `values` are then left empty)."""
        loop = asyncio.get_running_loop()
        rows = None
        try:
            while True:
                data = await loop.run_in_executor(None, self._results.recv_bytes)
                kind, body = data[:1], memoryview(data)[1:]
                if kind == LEAD:
                    led(Led(*self._load(body)))
                elif kind == ROWS:
                    rows = self._load(body)
                    os.ftruncate(self._rows_fd, 0)  # the last message: the file no longer needed
                    if adopt is not None:
                        await adopt(*rows)
                        rows = (rows[0], {})
                elif kind == DONE and rows is not None:
                    result = pickle.loads(body)
                    result.keys, result.values = rows
                    return result
                else:
                    raise RuntimeError(f"a first-pass process failed:\n{bytes(body).decode(errors='replace')}")
        except (EOFError, BrokenPipeError):
            await loop.run_in_executor(None, self._process.join)
            raise RuntimeError(f"a first-pass process died (exit code {self._process.exitcode})") from None

    def _load(self, where: memoryview) -> tuple:
        """A message's body from the memory file, where the pipe says it is."""
        at, length = map(int, bytes(where).split())
        with mmap.mmap(self._rows_fd, length, access=mmap.ACCESS_READ, offset=at) as written:
            return marshal.loads(written)

    async def fold(self, share: Share) -> Folded:
        """`fold(share)` in this process."""
        self.give(share)
        self.allow_write()
        return await self.folded()

    def dismiss(self) -> None:
        """Told to exit if it has not written (idempotent); reaped. Killed if still folding:
        its rows are no longer wanted (the pass failed, or another worker made it)."""
        try:
            self._shares.send(None)
        except (BrokenPipeError, OSError):
            pass
        self._shares.close()
        self._results.close()
        if self._rows_fd >= 0:
            os.close(self._rows_fd)
            self._rows_fd = -1
        self._process.join(1)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
