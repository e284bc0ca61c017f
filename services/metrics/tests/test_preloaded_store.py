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
