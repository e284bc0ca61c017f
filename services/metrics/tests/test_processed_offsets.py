"""What the metrics worker may commit: only offsets its agent handled, never past one that
faust's stream skipped (a skipped message is acked like a processed one). No broker."""

from __future__ import annotations

from collections import namedtuple

from hypothesis import given
from hypothesis import strategies as st

from ganshou_metrics.adapters.processed_offsets import ProcessedOffsets, commit_only_processed

TP = namedtuple("TP", "topic partition")
SOURCE, CHANGELOG = TP("ganshou.casework.events.v1", 2), TP("metrics-streams-casework-changelog", 2)


def test_contiguous_events_advance_the_offset():
    p = ProcessedOffsets()
    for offset in range(100, 110):
        p.handled(SOURCE, offset, committed=100)
    assert p.committable(SOURCE) == 110


def test_a_skipped_event_holds_the_partition_back_until_it_comes_again():
    p = ProcessedOffsets()
    for offset in (100, 101, 105, 106):  # 102-104 skipped by the stream
        p.handled(SOURCE, offset, committed=100)
    assert p.committable(SOURCE) == 102
    for offset in range(102, 108):  # faust seeks back and delivers them again
        p.handled(SOURCE, offset, committed=102)
    assert p.committable(SOURCE) == 108


def test_events_skipped_before_the_first_one_handled_are_not_passed_over():
    p = ProcessedOffsets()
    p.handled(SOURCE, 4000, committed=3000)
    assert p.committable(SOURCE) == 3000


def test_nothing_handled_nothing_committed_and_a_rebalance_starts_afresh():
    p = ProcessedOffsets()
    assert p.committable(SOURCE) is None
    p.handled(SOURCE, 0, committed=None)
    p.forget()
    assert p.committable(SOURCE) is None
    p.handled(SOURCE, 50, committed=50)
    assert p.committable(SOURCE) == 51


@given(st.lists(st.booleans(), min_size=1, max_size=200))
def test_never_past_an_event_not_handled(delivered):
    """Whatever the stream skips, everything below the committable offset was handled."""
    p = ProcessedOffsets()
    handled = {n for n, ok in enumerate(delivered) if ok}
    for n in sorted(handled):
        p.handled(SOURCE, n, committed=0)
    offset = p.committable(SOURCE) or 0
    assert set(range(offset)) <= handled


class FaustConsumer:
    """faust's consumer as far as the guard touches it: its offset from acked messages."""

    def __init__(self):
        self.asked = []

    def _new_offset(self, tp):
        self.asked.append(tp)
        return 5000  # faust's view: every acked message, skipped ones included


def test_the_consumer_commits_the_handled_offset_for_source_topics_only():
    consumer, p = FaustConsumer(), ProcessedOffsets()
    commit_only_processed(consumer, p, {SOURCE.topic})
    p.handled(SOURCE, 10, committed=10)
    assert consumer._new_offset(SOURCE) == 11
    assert consumer._new_offset(CHANGELOG) == 5000
    assert consumer.asked == [SOURCE, CHANGELOG]  # faust still prunes its acked offsets
