"""Personal data: sealed per person, unreadable after erasure, every read audited."""

from __future__ import annotations

import base64
import os

import asyncpg
import pytest

from ganshou_common.migrate import migrate
from ganshou_common.pii import MasterKey, MemoryKeyRing, PostgresKeyRing, record_access, seal, unseal


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
