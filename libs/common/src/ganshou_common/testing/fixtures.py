"""pytest fixtures for integration tests against the real local stack.

`make test` starts Kafka and PostgreSQL with deploy/local/stack.sh; these fixtures only
connect. When the stack is not there they fail, naming what is missing: an integration
test never silently skips, and never talks to a fake.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest


def stack_setting(name: str, default: str) -> str:
    return os.environ.get(name, default)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return stack_setting("KAFKA_BOOTSTRAP", f"127.0.0.1:{stack_setting('KAFKA_PORT', '29092')}")


@pytest.fixture(scope="session")
def pg_port() -> int:
    return int(stack_setting("PG_PORT", "25432"))


def test_dsn(port: int, database: str = "ganshou_test") -> str:
    return f"postgresql://ganshou_test:ganshou_test@127.0.0.1:{port}/{database}"


@asynccontextmanager
async def fresh_database(port: int) -> AsyncIterator[str]:
    """A new, empty database on the local stack's PostgreSQL; its DSN. Dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    try:
        admin = await asyncpg.connect(test_dsn(port))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL of the local stack is not reachable on port {port} ({exc}); run `make up`")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield test_dsn(port, name)
    finally:
        # A new connection: a test may have restarted the server since (the fault scenarios do).
        await drop_database(port, name)


async def drop_database(port: int, name: str, attempts: int = 20) -> None:
    """DROP ... WITH (FORCE), retried: a stack made before ganshou_test could end other
    roles' sessions refuses while an autovacuum worker is in the database, briefly."""
    admin = await asyncpg.connect(test_dsn(port))
    try:
        for attempt in range(attempts):
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                return
            except (asyncpg.InsufficientPrivilegeError, asyncpg.ObjectInUseError):
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.5)
    finally:
        await admin.close()


@pytest.fixture
async def pg_database(pg_port: int) -> AsyncIterator[str]:
    """A fresh, empty database for one test."""
    async with fresh_database(pg_port) as dsn:
        yield dsn


@pytest.fixture
def unique_topic() -> str:
    return f"test.{uuid.uuid4().hex[:12]}"


@asynccontextmanager
async def migrated_store(port: int):
    """A PostgresEventStore on a fresh, migrated database."""
    from ganshou_common.eventstore.postgres import PostgresEventStore
    from ganshou_common.migrate import migrate

    async with fresh_database(port) as dsn:
        await migrate(dsn)
        store = await PostgresEventStore.connect(dsn, max_size=30)
        try:
            yield store
        finally:
            await store.close()
