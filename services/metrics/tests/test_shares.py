"""How a first pass is split into shares (catch_up.py): by whole partitions, the worker's
own share lighter by the work it does besides folding."""

from aiokafka import TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from ganshou_metrics.adapters.catch_up import _shares

CHANGELOGS = {"intake": "i-changelog", "casework": "c-changelog"}


def _split(ends, processes, lighter_by):
    return [share.ends for share in _shares("b:1", ends, CHANGELOGS, processes, lighter_by)]


def test_equal_partitions_split_evenly_unless_the_worker_is_lighter_by_a_partition_or_more():
    ends = {TopicPartition("intake", p): 1000 for p in range(6)}
    assert [len(s) for s in _split(ends, 2, 0)] == [3, 3]
    assert [len(s) for s in _split(ends, 2, 999)] == [3, 3]
    assert [len(s) for s in _split(ends, 2, 1001)] == [2, 4]
    assert [len(s) for s in _split(ends, 2, 10**9)] == [0, 6]  # a small pass: all in the other process
    assert _split(ends, 1, 10**9) == [ends]  # no other process: all here


@given(st.dictionaries(st.tuples(st.sampled_from(sorted(CHANGELOGS)), st.integers(0, 5)), st.integers(0, 10**6),
                       max_size=12),
       st.integers(1, 4), st.integers(0, 2 * 10**6))
def test_every_partition_with_events_is_in_one_share_and_the_loads_are_balanced(held, processes, lighter_by):
    ends = {TopicPartition(t, p): end for (t, p), end in held.items()}
    shares = _split(ends, processes, lighter_by)
    assert len(shares) == processes
    placed = [tp for share in shares for tp in share]
    assert sorted(placed) == sorted(tp for tp, end in ends.items() if end > 0)
    assert all(share[tp] == ends[tp] for share in shares for tp in share)
    # Largest first to the lightest: no share ends heavier than the lightest by more than a partition.
    loads = [sum(share.values()) + (lighter_by if i == 0 else 0) for i, share in enumerate(shares)]
    assert max(loads) - min(loads) <= max([*ends.values(), lighter_by, 0])


def test_the_worker_s_share_is_led_by_half_what_it_is_heavier_by():
    ends = {TopicPartition("intake", p): 1000 for p in range(6)}
    worker, other = _shares("b:1", ends, CHANGELOGS, 2, 600)
    assert (len(worker.ends), len(other.ends)) == (3, 3)
    assert other.leads == worker.starts and sum(other.leads.values()) == 300  # (3,000 + 600 - 3,000) / 2
    assert set(other.leads) <= set(worker.ends) and not worker.leads and not other.starts
    even, _ = _shares("b:1", ends, CHANGELOGS, 2, 0)
    assert not even.starts  # nothing to move


@given(st.dictionaries(st.tuples(st.sampled_from(sorted(CHANGELOGS)), st.integers(0, 5)), st.integers(0, 10**6),
                       max_size=12),
       st.integers(2, 4), st.integers(0, 2 * 10**6))
def test_leads_are_beginnings_of_the_worker_s_partitions_and_leave_it_no_lighter_than_the_lightest(
        held, processes, lighter_by):
    ends = {TopicPartition(t, p): end for (t, p), end in held.items()}
    shares = _shares("b:1", ends, CHANGELOGS, processes, lighter_by)
    worker, others = shares[0], shares[1:]
    leads = {tp: n for share in others for tp, n in share.leads.items()}
    assert leads == worker.starts
    assert all(0 < n < worker.ends[tp] for tp, n in leads.items())  # a beginning: the worker goes on from it
    loads = [sum(s.ends.values()) - sum(s.starts.values()) + sum(s.leads.values()) for s in shares]
    loads[0] += lighter_by
    if leads:
        assert loads[0] >= min(loads[1:])
