"""A row's changelog write waits out a producer that cannot take it (the broker out of
reach), and stops when the producer is closed (the worker stopping)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaTimeoutError, ProducerClosed

from ganshou_metrics.adapters import changelog_writer
from ganshou_metrics.adapters.changelog_writer import send_row


class _Producer:
    def __init__(self, failures: list[Exception]):
        self.failures, self.sent = failures, []

    async def send(self, topic, value, key, partition):
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((topic, partition, key, value))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(len(self.sent))
        return fut


async def test_a_write_the_producer_cannot_take_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    real_sleep = asyncio.sleep
    monkeypatch.setattr(changelog_writer.asyncio, "sleep", lambda s: real_sleep(0))  # no second's wait
    producer = _Producer([KafkaTimeoutError(), KafkaTimeoutError()])
    written = await send_row(producer, "changelog", 2, b'"k"', b"row")
    assert await written == 1
    assert producer.sent == [("changelog", 2, b'"k"', b"row")]  # once


async def test_a_closed_producer_ends_the_write() -> None:
    with pytest.raises(ProducerClosed):
        await send_row(_Producer([ProducerClosed()]), "changelog", 0, b'"k"', b"row")
