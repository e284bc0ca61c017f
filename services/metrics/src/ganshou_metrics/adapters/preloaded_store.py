"""faust's in-memory table store, which a new generation's first pass, or a started
generation's reading of its changelogs, can fill before faust starts.

The pass (catch_up.py) has every row in this process and has just written them to the
changelogs; a restarted worker reads them back outside faust (reload.py). faust's
recovery would read them through its per-message consumer (~3,500–4,000 rows/s here, over
four minutes for a million). Preloaded, the store holds the rows, the keys of each changelog
partition (as lists: faust's own map of key → partition took ~0.5 s a million to build, and
is only read when a partition goes), and, per changelog partition, the offset of the last
row written there, so recovery reads only what follows it. Once: a partition assigned again
later (after a rebalance, when faust has dropped its rows), or first assigned after the
first recovery (a second worker of the generation held it until it left), is recovered from
its changelog as usual.

A store is `intact` while it holds the preloaded rows unchanged by faust (no changelog
record read back, no row of an unassigned partition dropped): the pass's figures are then
the rows' figures, and the worker need not recompute them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import faust.stores
from faust.stores.memory import Store

NAME = "ganshou-preloaded"


def preload(table: Any, rows: dict[str, Any], keys: Mapping[int, Sequence[str]], last_offsets: dict[Any, int]) -> None:
    """Left on the table for its store, which faust creates later in its own event loop
    (creating it here would bind it to the pass's loop, closed by then)."""
    table.ganshou_preloaded = (rows, keys, last_offsets)


class PreloadedStore(Store):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._preloaded: dict[Any, int] = {}
        self._preloaded_keys: dict[int, list[Sequence[str]]] = {}  # changelog partition → its preloaded keys
        self.intact = False  # until preloaded
        super().__init__(*args, **kwargs)
        pending = getattr(self.table, "ganshou_preloaded", None)
        if pending is not None:
            self.preload(*pending)
            del self.table.ganshou_preloaded

    def preload(self, rows: dict[str, Any], keys: Mapping[int, Sequence[str]], last_offsets: dict[Any, int]) -> None:
        """`rows` by key, the keys of each changelog partition, and per changelog (topic,
        partition) the offset of the last row written there."""
        if self.data:
            self.data.update(rows)
        else:  # taken as they are: a copy of a million entries would only add memory
            self.data = rows
        for partition, held in keys.items():
            self._preloaded_keys.setdefault(partition, []).append(held)
        self._preloaded.update(last_offsets)
        self.intact = True

    def persisted_offset(self, tp: Any) -> int | None:
        return self._preloaded.pop(tp, None)

    def apply_changelog_batch(self, batch: Any, *args: Any, **kwargs: Any) -> None:
        batch = list(batch)
        if batch:
            self.intact = False
        super().apply_changelog_batch(batch, *args, **kwargs)

    def preloaded_keys(self, partition: int) -> set[str]:
        return {key for held in self._preloaded_keys.get(partition, ()) for key in held}

    async def on_recovery_completed(self, active_tps: Any, standby_tps: Any) -> None:
        held = len(self.data)
        # The rows of partitions not assigned are dropped: the preloaded ones here (kept for as
        # long as their partition is, so a later rebalance drops them too), those recovered
        # from a changelog by faust's own map.
        active = {partition for _, partition in active_tps}
        for partition in [p for p in self._preloaded_keys if p not in active]:
            for keys in self._preloaded_keys.pop(partition):
                for key in keys:
                    self.data.pop(key, None)
        await super().on_recovery_completed(active_tps, standby_tps)
        if len(self.data) != held:
            self.intact = False
        # A preloaded offset not taken by this recovery is of a partition not assigned: its rows
        # are gone, so a later assignment of it (another worker leaving) recovers it in full.
        self._preloaded.clear()


def intact(store: Any) -> bool:
    return bool(getattr(store, "intact", False))


faust.stores.STORES.aliases[NAME] = f"{__name__}:PreloadedStore"
