"""The worker starts without faust's waits for what is done already (quick_start.py): its
table manager does not sleep first, and its producer declares only topics not known to
exist; the changelogs are known once `ensure_changelogs` has created or found them."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from faust.transport.drivers import aiokafka as faust_kafka

from ganshou_metrics.adapters import quick_start
from ganshou_metrics.adapters.faust_app import Projection

pytestmark = pytest.mark.integration


async def test_only_topics_not_known_to_exist_are_declared(kafka_bootstrap: str, monkeypatch) -> None:
    projection = Projection(kafka_bootstrap, generation=f"quick-{uuid.uuid4().hex[:6]}")
    await projection.ensure_changelogs(kafka_bootstrap)
    changelogs = {t.changelog_topic_name for t in projection.tables.values()}
    assert changelogs <= projection.app.existing_topics
    declared = []

    async def faust_declares(self, topic, *args, **kwargs):
        declared.append(topic)

    monkeypatch.setattr(faust_kafka.Producer, "create_topic", faust_declares)
    producer = projection.app.producer
    assert isinstance(producer, quick_start.Producer)
    for topic in sorted(changelogs):
        await producer.create_topic(topic, 6, 1)
    await producer.create_topic("not-known-yet", 6, 1)
    assert declared == ["not-known-yet"]


async def test_the_table_manager_starts_without_sleeping(monkeypatch) -> None:
    projection = Projection("127.0.0.1:1", generation="quick-start")
    tables = projection.app.tables
    assert isinstance(tables, quick_start.TableManager)
    slept, started = [], []

    async def sleep(seconds):
        slept.append(seconds)

    async def update_channels():
        started.append("channels")

    monkeypatch.setattr(tables, "sleep", sleep)
    monkeypatch.setattr(tables, "_update_channels", update_channels)
    monkeypatch.setattr(tables, "_recovery", type("R", (), {"start": lambda self: asyncio.sleep(0)})())
    await tables.on_start()
    assert slept == [] and started == ["channels"]
