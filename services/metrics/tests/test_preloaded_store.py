"""faust's memory store as a first pass or a reload preloads it (no broker): the first
recovery goes on after the preloaded rows of the partitions it is given; a partition it is
not given loses its rows and, given later (the other worker of the generation leaving), is
recovered from its changelog in full."""

from __future__ import annotations

from faust.types import TP

from ganshou_metrics.adapters.faust_app import Projection
from ganshou_metrics.adapters.preloaded_store import intact, preload


async def test_a_partition_given_only_after_the_first_recovery_is_recovered_in_full() -> None:
    projection = Projection("127.0.0.1:1", "preloaded", 3)
    table = next(iter(projection.table_of.values()))
    changelog = table.changelog_topic_name
    preload(table, {"a": b"1", "b": b"2", "c": b"3"}, {0: ["a"], 1: ["b"], 2: ["c"]},
            {TP(changelog, p): 10 + p for p in range(3)})
    store = table.data

    assert table.persisted_offset(TP(changelog, 0)) == 10  # recovery reads only what follows the rows
    await store.on_recovery_completed({TP(changelog, 0)}, set())  # partitions 1 and 2 went to another worker

    assert store.data == {"a": b"1"} and not intact(store)
    assert table.persisted_offset(TP(changelog, 1)) is None  # given later: its changelog read from the start
    assert table.persisted_offset(TP(changelog, 2)) is None


async def test_a_preloaded_partition_taken_away_at_a_later_rebalance_loses_its_rows() -> None:
    projection = Projection("127.0.0.1:1", "preloaded-later", 3)
    table = next(iter(projection.table_of.values()))
    changelog = table.changelog_topic_name
    preload(table, {"a": b"1", "b": b"2", "c": b"3", "d": b"4"}, {0: ["a", "d"], 1: ["b"], 2: ["c"]},
            {TP(changelog, p): 10 + p for p in range(3)})
    store = table.data
    await store.on_recovery_completed({TP(changelog, p) for p in range(3)}, set())  # alone: every partition
    assert store.data == {"a": b"1", "b": b"2", "c": b"3", "d": b"4"} and intact(store)

    await store.on_recovery_completed({TP(changelog, 0), TP(changelog, 2)}, set())  # a second worker took 1

    assert store.data == {"a": b"1", "c": b"3", "d": b"4"} and not intact(store)
