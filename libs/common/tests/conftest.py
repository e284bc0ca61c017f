from __future__ import annotations

import pytest

from ganshou_common.eventstore import MemoryEventStore
from ganshou_common.testing.fixtures import migrated_store


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.integration)])
async def store(request: pytest.FixtureRequest, pg_port: int):
    """The contract suite runs against every implementation of the event store."""
    if request.param == "memory":
        yield MemoryEventStore()
    else:
        async with migrated_store(pg_port) as pg:
            yield pg
