"""What the metrics worker may commit: only offsets whose events are durable — handled, and
their changelog writes acknowledged — never past one that faust's stream skipped (acked
like a processed one) or whose write is still on its way or was lost. No broker."""

from __future__ import annotations

from collections import namedtuple

from hypothesis import given
from hypothesis import strategies as st

from ganshou_metrics.adapters.processed_offsets import ProcessedOffsets, commit_only_processed

TP = namedtuple("TP", "topic partition")
SOURCE, CHANGELOG = TP("ganshou.casework.events.v1", 2), TP("metrics-streams-casework-changelog", 2)


def handle(p: ProcessedOffsets, offsets, committed) -> None:
    for offset in offsets:
        p.received(SOURCE, offset, committed)
        p.done(SOURCE, offset)


def test_contiguous_events_advance_the_offset():
    p = ProcessedOffsets()
    handle(p, range(100, 110), committed=100)
    assert p.committable(SOURCE) == 110


def test_a_skipped_event_holds_the_partition_back_until_it_comes_again():
    p = ProcessedOffsets()
    handle(p, (100, 101, 105, 106), committed=100)  # 102-104 skipped by the stream
    assert p.committable(SOURCE) == 102
    handle(p, range(102, 108), committed=102)  # faust seeks back and delivers them again
    assert p.committable(SOURCE) == 108


def test_events_skipped_before_the_first_one_handled_are_not_passed_over():
    p = ProcessedOffsets()
    handle(p, [4000], committed=3000)
    assert p.committable(SOURCE) == 3000


def test_a_write_not_yet_acknowledged_holds_the_partition_back():
    p = ProcessedOffsets()
    for offset in range(10, 15):
        p.received(SOURCE, offset, committed=10)
    for offset in (10, 12, 13):  # 11's changelog write is still on its way (or was lost)
        p.done(SOURCE, offset)
    assert p.committable(SOURCE) == 11
    p.done(SOURCE, 11)  # acknowledged at last: the partition moves past everything done
    assert p.committable(SOURCE) == 14


def test_the_first_event_received_sets_the_floor_even_if_a_later_one_completes_first():
    p = ProcessedOffsets()
    p.received(SOURCE, 0, committed=None)
    p.received(SOURCE, 1, committed=None)
    p.done(SOURCE, 1)  # a duplicate, done at once; 0's write is pending
    assert p.committable(SOURCE) == 0


def test_nothing_handled_nothing_committed():
    p = ProcessedOffsets()
    assert p.committable(SOURCE) is None
    handle(p, [0, 1], committed=None)
    assert p.committable(SOURCE) == 2


def test_a_new_group_commits_nothing_past_the_start_of_the_topic():
    """Nothing committed yet: the first event seen may not be the topic's first."""
    p = ProcessedOffsets()
    handle(p, [7, 8], committed=None)
    assert p.committable(SOURCE) == 0


def test_a_rebalance_keeps_writes_on_their_way_holding_the_partition_back():
    """The soak's loss: after a broker restart's rebalance, an event still buffered from
    before arrived while faust's committed offset was unknown; a fresh floor started past
    writes never acknowledged."""
    p = ProcessedOffsets()
    handle(p, range(100, 110), committed=100)
    p.received(SOURCE, 110, committed=100)  # its write is stuck in the producer
    p.received(SOURCE, 111, committed=100)
    p.done(SOURCE, 111)
    p.forget()  # the rebalance
    handle(p, [112, 113], committed=None)  # buffered from before; committed not read back yet
    assert p.committable(SOURCE) == 110
    handle(p, range(110, 114), committed=110)  # faust seeks back and delivers them again
    assert p.committable(SOURCE) == 114


def test_a_partition_back_from_another_worker_resumes_at_its_committed_offset():
    """Not at this worker's old floor: the stretch between is the other worker's, and the
    agent would read it all again as passed over."""
    p = ProcessedOffsets()
    handle(p, range(100, 110), committed=100)
    p.received(SOURCE, 110, committed=100)  # its write never completes here
    p.forget()  # the partition moves to another worker, which goes on to 5000, then back
    assert p.received(SOURCE, 5000, committed=5000) == 0
    p.done(SOURCE, 5000)
    assert p.committable(SOURCE) == 5001


@given(st.lists(st.sampled_from(["skipped", "done", "pending"]), min_size=1, max_size=200), st.randoms())
def test_never_past_an_event_not_durable(fates, rnd):
    """Whatever the stream skips and in whatever order writes complete, everything below
    the committable offset is durable."""
    p = ProcessedOffsets()
    received = [n for n, fate in enumerate(fates) if fate != "skipped"]
    for n in received:
        p.received(SOURCE, n, committed=0)
    finished = [n for n in received if fates[n] == "done"]
    rnd.shuffle(finished)
    for n in finished:
        p.done(SOURCE, n)
    offset = p.committable(SOURCE) or 0
    assert set(range(offset)) <= set(finished)


class FaustConsumer:
    """faust's consumer as far as the guard touches it: its offset from acked messages."""

    def __init__(self):
        self.asked = []

    def _new_offset(self, tp):
        self.asked.append(tp)
        return 5000  # faust's view: every acked message, skipped ones included


def test_the_consumer_commits_the_durable_offset_for_source_topics_only():
    consumer, p = FaustConsumer(), ProcessedOffsets()
    commit_only_processed(consumer, p, {SOURCE.topic})
    handle(p, [10], committed=10)
    assert consumer._new_offset(SOURCE) == 11
    assert consumer._new_offset(CHANGELOG) == 5000
    assert consumer.asked == [SOURCE, CHANGELOG]  # faust still prunes its acked offsets


def test_offsets_the_stream_passes_over_are_counted():
    p = ProcessedOffsets()
    assert p.received(SOURCE, 100, committed=100) == 0
    assert p.received(SOURCE, 101, committed=100) == 0
    assert p.received(SOURCE, 105, committed=100) == 3  # 102-104 never reached the agent
    q = ProcessedOffsets()
    assert q.received(SOURCE, 4000, committed=3000) == 1000  # resumed past its committed offset
