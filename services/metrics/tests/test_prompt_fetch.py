"""The worker's consumer fetches with a short wait (prompt_fetch.py): the consumer faust
builds for it carries the wait, and aiokafka's fetcher, started against the real broker,
uses it (the attribute is aiokafka's own: this fails if aiokafka stops reading it)."""

from __future__ import annotations

import uuid

import pytest

from ganshou_metrics.adapters.faust_app import Projection
from ganshou_metrics.adapters.prompt_fetch import FETCH_MAX_WAIT_MS

pytestmark = pytest.mark.integration


async def test_the_workers_consumer_fetches_with_the_short_wait(kafka_bootstrap: str) -> None:
    app = Projection(kafka_bootstrap, generation=f"prompt-{uuid.uuid4().hex[:6]}").app
    thread = app.consumer._thread
    consumer = thread._create_worker_consumer(app.transport)
    assert FETCH_MAX_WAIT_MS < 1500  # faust's own
    assert consumer._fetch_max_wait_ms == FETCH_MAX_WAIT_MS
    await consumer.start()
    try:
        assert consumer._fetcher._fetch_max_wait_ms == FETCH_MAX_WAIT_MS
    finally:
        await consumer.stop()
