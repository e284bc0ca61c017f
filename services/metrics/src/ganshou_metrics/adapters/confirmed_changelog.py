"""Offsets are committed only after the table rows they produced are on the broker.

faust writes a table's changelog through a buffer (`send_soon`) and, before committing the
consumer's offsets, flushes that buffer only until it stalls for 0.1 s. After a broker
restart the buffer drains slowly while the offset commit succeeds at once, so a worker
killed then comes back with the offsets past events whose rows never reached the
changelog: rows lost for good (seen in the soak: KeyError 'promises' on later case
events). Here every changelog write is tracked until the broker acknowledges it, and the
producer's flush — which faust awaits before each commit — also waits for those
acknowledgements; a write the producer gave up on is sent again with the row's current
value (the changelog is compacted: the latest value per key is what recovery needs).
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust

from ganshou_common import logs

log = logs.get("ganshou.metrics")


class ConfirmedTable(faust.Table):
    """A table that remembers its changelog writes until the broker has them."""

    def __post_init__(self) -> None:  # type: ignore[override]
        super().__post_init__()
        self.unconfirmed: dict[asyncio.Future, tuple[int | None, Any]] = {}

    def send_changelog(self, partition, key, value, key_serializer=None, value_serializer=None):
        fut = super().send_changelog(partition, key, value, key_serializer, value_serializer)
        self.unconfirmed[fut] = (partition, key)
        fut.add_done_callback(self._settled)
        return fut

    def _settled(self, fut: asyncio.Future) -> None:
        # A failed write stays listed: confirm() sends the row again.
        if not fut.cancelled() and fut.exception() is None:
            self.unconfirmed.pop(fut, None)

    async def confirm(self) -> None:
        """Return once every changelog write made so far is acknowledged by the broker."""
        while self.unconfirmed:
            waiting = list(self.unconfirmed.items())
            # asyncio.wait, not gather: a commit cancelled mid-way must not cancel the writes.
            await asyncio.wait([fut for fut, _ in waiting])
            for fut, (partition, key) in waiting:
                # Dropped here too: _settled runs only on a later turn of the event loop.
                self.unconfirmed.pop(fut, None)
                error = "cancelled" if fut.cancelled() else fut.exception()
                if error is not None:  # the producer gave up: send the row as it is now
                    row = self.data.get(key)
                    log.warning("changelog_write_failed", table=self.name, resent=row is not None, error=repr(error))
                    if row is not None:  # None: the partition moved away; never send a tombstone
                        self.send_changelog(partition, key, row)


def confirm_before_commit(app: faust.App, tables: list[ConfirmedTable]) -> None:
    """Make the producer's flush (awaited by faust before every offset commit) also wait
    for the tables' changelog writes to be acknowledged."""
    producer = app.producer
    flush = producer.flush

    async def flush_and_confirm() -> None:
        await flush()
        for table in tables:
            await table.confirm()

    producer.flush = flush_and_confirm  # type: ignore[method-assign]
