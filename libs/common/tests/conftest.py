from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from ganshou_common.eventstore import MemoryEventStore
from ganshou_common.eventstore.postgres import PostgresEventStore
from ganshou_common.migrate import migrate
from ganshou_common.testing.fixtures import fresh_database


@asynccontextmanager
async def migrated_store(port: int) -> AsyncIterator[PostgresEventStore]:
    async with fresh_database(port) as dsn:
        await migrate(dsn)
        store = await PostgresEventStore.connect(dsn)
        try:
            yield store
        finally:
            await store.close()


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.integration)])
async def store(request: pytest.FixtureRequest, pg_port: int):
    """The contract suite runs against every implementation of the event store."""
    if request.param == "memory":
        yield MemoryEventStore()
    else:
        async with migrated_store(pg_port) as pg:
            yield pg
