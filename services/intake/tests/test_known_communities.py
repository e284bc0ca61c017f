"""Communities remembered by the process: only what was seen committed."""

from __future__ import annotations

import asyncpg
import pytest

from ganshou_common.migrate import migrate
from ganshou_common.testing.fixtures import fresh_database
from ganshou_intake.adapters.known_communities import KnownCommunities
from ganshou_intake.adapters.read_models import SQL_DIR, insert_community

pytestmark = pytest.mark.integration


async def test_a_community_seen_only_in_a_rolled_back_transaction_is_not_remembered(pg_port: int) -> None:
    async with fresh_database(pg_port) as dsn:
        await migrate(dsn, [SQL_DIR])
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=3)
        try:
            known = KnownCommunities(pool)
            async with pool.acquire() as conn:
                tx = conn.transaction()
                await tx.start()
                await insert_community(conn, "c-new", "新社区", 1)
                assert await known.exists(conn, "c-new")  # the transaction sees its own
                await tx.rollback()
                assert not await known.exists(conn, "c-new")  # and nothing of it was kept
            await insert_community(pool, "c-new", "新社区", 1)
            assert await known.exists(pool, "c-new")
            await pool.execute("ALTER TABLE communities RENAME TO communities_gone")
            assert await known.exists(pool, "c-new")  # remembered: no read any more
        finally:
            await pool.close()


async def test_with_every_connection_held_it_answers_from_the_commands_own(pg_port: int) -> None:
    async with fresh_database(pg_port) as dsn:
        await migrate(dsn, [SQL_DIR])
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
        try:
            known = KnownCommunities(pool, wait_s=0.05)
            await insert_community(pool, "c-held", "社区", 1)
            async with pool.acquire() as conn:  # the command's: the pool's only connection
                assert await known.exists(conn, "c-held")
                assert not await known.exists(conn, "c-none")
            assert await known.exists(pool, "c-held")  # remembered once a connection was free
        finally:
            await pool.close()
