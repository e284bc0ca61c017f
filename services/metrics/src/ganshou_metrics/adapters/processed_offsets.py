"""Commit a source partition's offset only as far as every event below it is durable.

faust commits the offsets of acked messages, and two things let that run ahead of what a
replacement worker can recover. Its stream acks a message it *skips* like one it
processed (it skips every message while flow control is suspended, during a rebalance's
recovery, or when the message is of an older consumer generation). And a table write is
only queued when the agent moves on: its changelog message waits in faust's producer
buffer and then in aiokafka's, and faust's flush before a commit gives up after 0.1 s
without progress (a broker restart) and does not wait for batches already in flight.
The soak showed both as offsets committed past rows never written to the changelog: the
replacement worker never projected them (rows lost, later events dead-lettered).

Here the agent marks each event received (in the stream's order) and done once its
changelog write (or its dead letter) is acknowledged by the broker, or at once when it
wrote nothing (a duplicate). The offset committed for a source partition is the first one
not done: a skipped message (which the agent reads again, partition_reader.py), or a write
lost or still on its way, holds the partition back, and a restarted worker reads from there
(faust seeks to the committed offset after every rebalance too). The floors survive
rebalances: a soak lost rows when they were started afresh after one (see forget). Events handled twice are skipped by the rows'
versions; one seen again waits for its row's last write (faust_app.py). Limit: an
offset that never completes (a real gap in a source partition, none here: idempotent,
non-transactional producers and unlimited retention) holds that partition's commits for
good — safe, but every restart re-reads from that point.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any


class ProcessedOffsets:
    """Per partition, the first offset not yet done (every offset below it is)."""

    def __init__(self) -> None:
        self._floor: dict[Any, int] = {}
        self._done: dict[Any, set[int]] = {}  # done offsets above the floor (completed out of order)
        self._next: dict[Any, int] = {}  # the offset expected next from the stream

    def received(self, tp: Any, offset: int, committed: int | None) -> int:
        """An event the agent is about to handle, in the order the stream delivers them;
        how many offsets the stream passed over just before it (0 when none)."""
        if tp not in self._floor:
            # The first event here since the worker started: the partition resumed at its
            # committed offset (an event past it means the ones between were skipped), or
            # at the start of the topic when nothing was committed yet (a new group; the
            # topics keep every event).
            self._floor[tp] = 0 if committed is None else min(offset, committed)
        elif tp not in self._next and committed is not None and committed > self._floor[tp]:
            # Back after a rebalance, committed past this worker's floor, which it never
            # commits past: another worker handled the partition meanwhile.
            self._floor[tp] = committed
            self._done[tp] = {o for o in self._done.get(tp, ()) if o >= committed}
            self._advance(tp)
        expected = self._next.get(tp, self._floor[tp])
        self._next[tp] = offset + 1
        return max(0, offset - expected)

    def knows(self, tp: Any) -> bool:
        """Whether the partition has a floor (an event was received since the worker started)."""
        return tp in self._floor

    def done(self, tp: Any, offset: int) -> None:
        """The event's effect is durable (its changelog write acknowledged, or none needed)."""
        floor = self._floor.get(tp)
        if floor is None or offset < floor:
            return  # below the floor: known durable already
        self._done.setdefault(tp, set()).add(offset)
        self._advance(tp)

    def _advance(self, tp: Any) -> None:
        floor, done = self._floor[tp], self._done.setdefault(tp, set())
        while floor in done:
            done.remove(floor)
            floor += 1
        self._floor[tp] = floor

    def committable(self, tp: Any) -> int | None:
        return self._floor.get(tp)

    def forget(self) -> None:
        """After a rebalance faust seeks back to the committed offsets. The floors stay: a
        write still on its way holds its partition back across a rebalance too (clearing
        them let the first event after one, still buffered from before and with faust's
        committed offset not yet read back, set a floor past writes never acknowledged).
        A partition that moved to another worker is not committed by this one."""
        self._next.clear()


def commit_only_processed(consumer: Any, processed: ProcessedOffsets, topics: Collection[str]) -> None:
    """Make faust's consumer commit, for the given topics, only what the agents handled.
    Its own computation still runs (it prunes its list of acked offsets)."""
    faust_new_offset: Callable[[Any], int | None] = consumer._new_offset

    def new_offset(tp: Any) -> int | None:
        theirs = faust_new_offset(tp)
        return processed.committable(tp) if tp.topic in topics else theirs

    consumer._new_offset = new_offset
