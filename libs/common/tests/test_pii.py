"""Personal data: sealed per person, unreadable after erasure, every read audited."""

from __future__ import annotations

import asyncio
import base64
import os

import asyncpg
import pytest

from ganshou_common.migrate import migrate
from ganshou_common.pii import (
    MasterKey,
    MemoryKeyRing,
    PostgresKeyRing,
    keyed_digest,
    lookup_key,
    record_access,
    seal,
    unseal,
)


async def test_sealed_fields_open_only_for_their_person_and_field() -> None:
    ring = MemoryKeyRing()
    key = await ring.key_for("resident-1", create=True)
    sealed = seal(key, "resident-1", "phone", "13800138000")
    assert b"13800138000" not in sealed
    assert unseal(key, "resident-1", "phone", sealed) == "13800138000"
    with pytest.raises(ValueError):
        unseal(key, "resident-2", "phone", sealed)
    with pytest.raises(ValueError):
        unseal(key, "resident-1", "name", sealed)


async def test_erasure_deletes_the_key_for_good() -> None:
    ring = MemoryKeyRing()
    await ring.key_for("r", create=True)
    assert await ring.erase("r", "admin")
    assert await ring.key_for("r") is None
    assert await ring.key_for("r", create=True) is None  # no new key for an erased person
    assert not await ring.erase("r", "admin")


@pytest.mark.integration
async def test_keys_on_postgres_are_wrapped_and_erasure_is_final(pg_database: str) -> None:
    await migrate(pg_database)
    master = MasterKey.from_base64(base64.b64encode(os.urandom(32)).decode())
    conn = await asyncpg.connect(pg_database)
    try:
        async with conn.transaction():
            ring = PostgresKeyRing(conn, master)
            key = await ring.key_for("resident-9", create=True)
            sealed = seal(key, "resident-9", "name", "王小明")
        wrapped = await conn.fetchval("SELECT wrapped_key FROM subject_keys WHERE subject_id = 'resident-9'")
        assert key not in bytes(wrapped)
        assert unseal(await PostgresKeyRing(conn, master).key_for("resident-9"), "resident-9", "name", sealed) == "王小明"

        # A rolled-back command leaves no key behind.
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await PostgresKeyRing(conn, master).key_for("resident-10", create=True)
                raise RuntimeError("command failed")
        assert await PostgresKeyRing(conn, master).key_for("resident-10") is None

        assert await PostgresKeyRing(conn, master).erase("resident-9", "auditor-1")
        assert await PostgresKeyRing(conn, master).key_for("resident-9", create=True) is None

        await record_access(conn, actor="cadre-1", actor_role="community_cadre", subject_id="resident-9",
                            fields=["name", "phone"], purpose="home visit")
        row = await conn.fetchrow("SELECT actor, fields, purpose FROM personal_data_access")
        assert (row["actor"], row["fields"], row["purpose"]) == ("cadre-1", ["name", "phone"], "home visit")
    finally:
        await conn.close()


async def test_a_lookup_key_is_made_once_and_wrapped_like_a_persons(pg_database: str) -> None:
    """Each replica at its start asks for it: all get the one made first, and a digest under it
    tells equal values apart from others without holding them."""
    await migrate(pg_database)
    master = MasterKey.from_base64(base64.b64encode(os.urandom(32)).decode())
    pool = await asyncpg.create_pool(pg_database, min_size=2, max_size=4)
    try:
        keys = await asyncio.gather(*(lookup_key(pool, master, "id_number") for _ in range(4)))
        assert len(set(keys)) == 1 and len(keys[0]) == 32
        wrapped = await pool.fetchval("SELECT wrapped_key FROM subject_keys WHERE subject_id = 'lookup-id_number'")
        assert keys[0] not in bytes(wrapped)
        a, b = keyed_digest(keys[0], "11010519491231002X"), keyed_digest(keys[0], "110105194912310021")
        assert a == keyed_digest(keys[0], "11010519491231002X") and a != b and b"1101" not in a
    finally:
        await pool.close()
