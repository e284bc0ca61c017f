"""The commit barrier of the metrics worker's tables: faust commits offsets after the
producer's flush, and that flush must not return while a table row is unacknowledged.
No broker: the changelog futures are settled by hand."""

from __future__ import annotations

import asyncio
import json

import faust
from aiokafka.errors import KafkaTimeoutError

from ganshou_metrics.adapters.confirmed_changelog import ConfirmedTable, confirm_before_commit


def _app() -> tuple[faust.App, ConfirmedTable]:
    app = faust.App("confirm-test", broker="kafka://127.0.0.1:1", store="memory://", Table=ConfirmedTable)
    table = app.Table("rows", partitions=1, key_type=str)

    async def flushed() -> None:  # faust's own flush: the buffer handed over, nothing more
        return None

    app.producer.flush = flushed
    confirm_before_commit(app, [table])
    return app, table


async def _still_waiting(task: asyncio.Task) -> bool:
    await asyncio.sleep(0.05)
    return not task.done()


async def test_the_commit_waits_until_every_row_is_acknowledged():
    app, table = _app()
    table.data["case-1"] = {"v": 1}
    first = table.send_changelog(0, "case-1", {"v": 1})
    second = table.send_changelog(0, "case-2", {"v": 1})
    flush = asyncio.ensure_future(app.producer.flush())
    assert await _still_waiting(flush)
    first.set_result(None)
    assert await _still_waiting(flush)
    second.set_result(None)
    await asyncio.wait_for(flush, 1)
    assert not table.unconfirmed


async def test_a_write_the_producer_gave_up_on_is_sent_again_with_the_current_row():
    app, table = _app()
    table.data["case-1"] = {"v": 2}
    lost = table.send_changelog(0, "case-1", {"v": 1})
    flush = asyncio.ensure_future(app.producer.flush())
    lost.set_exception(KafkaTimeoutError())
    assert await _still_waiting(flush)
    (resent,) = table.unconfirmed
    assert resent is not lost and resent.message.partition == 0
    assert resent.message.value == b'{"v":2}' or b'"v": 2' in resent.message.value
    resent.set_result(None)
    await asyncio.wait_for(flush, 1)


async def test_no_tombstone_is_sent_for_a_row_that_moved_away():
    app, table = _app()
    lost = table.send_changelog(0, "case-9", {"v": 1})  # the partition is no longer here: no row
    lost.set_exception(KafkaTimeoutError())
    await asyncio.wait_for(app.producer.flush(), 1)
    assert not table.unconfirmed


async def test_rows_acknowledged_before_the_flush_are_not_waited_on_again():
    # A settled future's done-callback runs on a later turn of the loop: the flush must
    # not spin on it (it once did, holding the worker at 100% CPU).
    app, table = _app()
    futures = [table.send_changelog(0, f"case-{n}", {"v": 1}) for n in range(3)]
    for fut in futures:
        fut.set_result(None)
    await asyncio.wait_for(app.producer.flush(), 1)
    assert not table.unconfirmed
