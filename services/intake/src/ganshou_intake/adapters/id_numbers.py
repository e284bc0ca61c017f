"""One person, one resident: each ID number claimed by the resident registered with it.

A claim is the number's keyed digest (pii.keyed_digest under the service's lookup key) with
the resident's id, made in the command's transaction: a refused command's savepoint or
transaction takes its claims back, and erasure deletes the resident's. Only residents with
an ID number claim one.
"""

from __future__ import annotations

import asyncpg

from ganshou_common.pii import MasterKey, keyed_digest, unseal

_CLAIM = """
INSERT INTO resident_id_numbers (digest, resident_id)
SELECT * FROM unnest($1::bytea[], $2::text[])
ON CONFLICT (digest) DO NOTHING
RETURNING digest
"""


def digest(key: bytes, id_number: str) -> bytes:
    return keyed_digest(key, id_number.strip().upper())


async def claim(conn: asyncpg.Connection, claims: list[tuple[bytes, str]]) -> dict[str, str]:
    """Claim each (digest, resident id): {claiming resident id: the resident holding it} for
    every number another resident holds (also one claimed twice in `claims`)."""
    if not claims:
        return {}
    inserted = {r[0] for r in await conn.fetch(_CLAIM, [d for d, _ in claims], [rid for _, rid in claims])}
    missed = []
    for d, rid in claims:
        if d in inserted:
            inserted.discard(d)  # a digest claimed twice here is inserted for its first claim only
        else:
            missed.append((d, rid))
    if not missed:
        return {}
    # A statement of its own: it sees a claim committed while the insert waited for it.
    holders = dict(await conn.fetch("SELECT digest, resident_id FROM resident_id_numbers WHERE digest = ANY($1)",
                                    [d for d, _ in missed]))
    return {rid: holders[d] for d, rid in missed if holders.get(d, rid) != rid}


async def release(conn: asyncpg.Connection, resident_ids: list[str]) -> None:
    """The residents' claims gone (erased, or their row of an import refused)."""
    if resident_ids:
        await conn.execute("DELETE FROM resident_id_numbers WHERE resident_id = ANY($1)", resident_ids)


async def backfill(pool: asyncpg.Pool, master: MasterKey, key: bytes) -> int:
    """Claims for the residents registered before claims existed (0103 marks them pending),
    once: replicas starting together wait on the marker's lock, the later ones find it done.
    Where those residents already share a number, the first keeps it. Returns the claims made."""
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT pending FROM id_number_backfill FOR UPDATE"):
            return 0
        rows = await conn.fetch(
            "SELECT r.resident_id, r.id_number_sealed, k.wrapped_key FROM residents r "
            "JOIN subject_keys k ON k.subject_id = 'resident-' || r.resident_id "
            "WHERE NOT r.erased AND NOT EXISTS (SELECT 1 FROM resident_id_numbers c WHERE c.resident_id = r.resident_id)")
        claims = []
        for r in rows:
            subject = f"resident-{r['resident_id']}"
            number = unseal(master.unwrap(subject, bytes(r["wrapped_key"])), subject, "id_number",
                            bytes(r["id_number_sealed"]))
            if number:
                claims.append((digest(key, number), r["resident_id"]))
        await claim(conn, claims)
        await conn.execute("UPDATE id_number_backfill SET pending = false")
        return len(claims)
