"""Commit a source partition's offset only as far as the agent has processed every event.

faust commits the offsets of acked messages, and its stream acks a message it *skips*
like one it processed: it skips every message while flow control is suspended (during a
rebalance's recovery) or when the message is of an older consumer generation. In the
soak, a worker whose recovery stalled after a broker restart committed offsets far past
the events it had projected, and its replacement never projected them (rows lost, later
events dead-lettered). Here the agent records each offset it handled, and the offset
committed for a source partition is the first one it has not: a skipped message holds
the partition back until faust delivers it again (it seeks to the committed offset after
every rebalance), so nothing is passed over. Events handled twice are skipped by the
rows' versions. Limit: a real gap in a source partition's offsets (none here: idempotent,
non-transactional producers and unlimited retention) would hold its commits there for
good — safe, but every restart would re-read from that point.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any


class ProcessedOffsets:
    """Per partition, the first offset not yet handled (every offset below it was)."""

    def __init__(self) -> None:
        self._floor: dict[Any, int] = {}

    def handled(self, tp: Any, offset: int, committed: int | None) -> None:
        floor = self._floor.get(tp)
        if floor is None:
            # The first event here since start or a rebalance: the partition resumes at its
            # committed offset; an event past it means the ones between were skipped.
            floor = offset if committed is None else min(offset, committed)
        if offset == floor:
            floor += 1
        self._floor[tp] = floor  # an offset past the floor leaves a hole: the floor waits

    def committable(self, tp: Any) -> int | None:
        return self._floor.get(tp)

    def forget(self) -> None:
        """After a rebalance: partitions may have moved, and faust seeks to the committed offsets."""
        self._floor.clear()


def commit_only_processed(consumer: Any, processed: ProcessedOffsets, topics: Collection[str]) -> None:
    """Make faust's consumer commit, for the given topics, only what the agents handled.
    Its own computation still runs (it prunes its list of acked offsets)."""
    faust_new_offset: Callable[[Any], int | None] = consumer._new_offset

    def new_offset(tp: Any) -> int | None:
        theirs = faust_new_offset(tp)
        return processed.committable(tp) if tp.topic in topics else theirs

    consumer._new_offset = new_offset
