"""Communities already seen committed, remembered by the process.

A community is never removed, so once one is seen in the database a command need not
read it again: a demand raised without a household then costs no read at all (each read
is a round trip, and on this kind of VM a round trip's socket write is most of a
command's CPU; docs/benchmarks.md). Only what a read outside any transaction found is
remembered: a command's own transaction can see a community it registered itself and may
still roll back.
"""

from __future__ import annotations

import asyncpg

from ganshou_intake.adapters.read_models import Conn, community_exists


class KnownCommunities:
    def __init__(self, pool: asyncpg.Pool, limit: int = 100_000, wait_s: float = 0.2):
        self._pool, self._limit, self._wait_s = pool, limit, wait_s
        self._seen: set[str] = set()

    async def exists(self, conn: Conn, community_id: str) -> bool:
        """Whether the community exists as `conn` (a command's transaction) sees it."""
        if community_id in self._seen:
            return True
        try:
            # A second connection while the command holds one: waited for briefly only, so
            # commands holding every connection and each asking here cannot wait on each other.
            async with self._pool.acquire(timeout=self._wait_s) as committed:
                found = await community_exists(committed, community_id)
        except TimeoutError:
            return await community_exists(conn, community_id)  # answered, not remembered
        if found:
            if len(self._seen) < self._limit:  # a town has tens; the bound only guards memory
                self._seen.add(community_id)
            return True
        return await community_exists(conn, community_id)  # registered in this very transaction?
