"""Folding a batch of events gives what applying them one by one gives: the rows, the
figures, and which events each row's one write makes durable. No infrastructure."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ganshou_metrics.adapters.batches import fold, row_bytes, row_of
from ganshou_metrics.domain.projection import Figures

from .test_projection import NOW, town


def fold_in_batches(values: list[bytes | None], cuts: list[int]) -> tuple[Figures, dict, list[int], list]:
    """The worker's loop: batches cut at `cuts`, rows stored as bytes between batches."""
    figures, stored, covered, seen_before = Figures(), {}, [], []
    bounds = [0, *sorted(set(c % (len(values) + 1) for c in cuts)), len(values)]
    for start, end in zip(bounds, bounds[1:]):
        folded = fold(((i, values[i]) for i in range(start, end)), lambda k: row_of(stored.get(k)))
        for key, change in folded.changes.items():
            stored[key] = row_bytes(change.after)
            figures.replace(change.before, change.after)
            covered += change.covers
            assert change.last in change.covers
        seen_before += [i for i, _ in folded.seen_before]
        covered += [i for i, _, _ in folded.rejected]
    return figures, {k: row_of(v) for k, v in stored.items()}, covered, seen_before


@settings(max_examples=40, deadline=None)
@given(st.randoms(use_true_random=False), st.lists(st.integers(min_value=0, max_value=200), max_size=8))
def test_batches_give_what_one_by_one_gives(rnd, cuts) -> None:
    events = town()
    # Redeliveries (a seek-back) and poison among them.
    stream = []
    for env in events:
        stream.append(env.SerializeToString())
        if rnd.random() < 0.2:
            stream.append(rnd.choice(stream))
        if rnd.random() < 0.05:
            stream.append(rnd.choice([b"\xff\x00not protobuf", None]))
    # One event a batch is the projection event by event (with the worker's checks).
    expected, rows, _, _ = fold_in_batches(stream, list(range(len(stream) + 1)))
    figures, folded_rows, covered, seen_before = fold_in_batches(stream, cuts)
    assert folded_rows == rows
    assert figures.snapshot(now=NOW) == expected.snapshot(now=NOW)
    assert Figures.from_rows(folded_rows.values()).snapshot(now=NOW) == expected.snapshot(now=NOW)
    # Every event is accounted for exactly once: covered by a write, rejected, or seen before.
    assert sorted(covered + seen_before) == list(range(len(stream)))


def test_a_redelivery_in_the_batch_that_changes_its_stream_waits_for_that_write() -> None:
    events = [e.SerializeToString() for e in town()[:3]]
    first = fold([(0, events[2])], lambda k: None)  # a later stream's event arrives first
    assert list(first.changes) and not first.seen_before
    again = fold([(1, events[2]), (2, events[0])], lambda k: row_of(row_bytes(first.changes[k].after))
                 if k in first.changes else None)
    assert again.seen_before == [(1, next(iter(first.changes)))]
    assert [c.covers for c in again.changes.values()] == [[2]]
    both = fold([(3, events[0]), (4, events[0])], lambda k: None)
    assert [c.covers for c in both.changes.values()] == [[3, 4]] and both.applied == 1
