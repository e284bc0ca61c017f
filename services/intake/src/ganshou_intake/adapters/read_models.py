"""Intake's read models on PostgreSQL: what commands check and queries list.

Every function takes the connection of the command's transaction (or a pool for reads),
so a read model changes exactly when its events are appended.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

SQL_DIR = Path(__file__).parent / "sql"
Conn = asyncpg.Connection | asyncpg.Pool


@dataclass(frozen=True)
class HouseholdRow:
    household_id: str
    community_id: str
    address_sealed: bytes
    segments: list[int]
    care_groups: list[int]


@dataclass(frozen=True)
class ResidentRow:
    resident_id: str
    household_id: str
    community_id: str
    segment: int
    care_groups: list[int]
    name_sealed: bytes
    phone_sealed: bytes
    id_number_sealed: bytes
    erased: bool


@dataclass(frozen=True)
class CampaignRow:
    campaign_id: str
    community_id: str
    starts_at: datetime
    ends_at: datetime
    whole_community: bool


async def community_exists(conn: Conn, community_id: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM communities WHERE community_id = $1", community_id))


async def community_and_household(conn: Conn, community_id: str, household_id: str
                                  ) -> tuple[bool, HouseholdRow | None]:
    """Whether the community exists, and the household (if any): one round trip."""
    r = await conn.fetchrow(
        "SELECT EXISTS (SELECT 1 FROM communities WHERE community_id = $1), "
        "h.household_id, h.community_id, h.address_sealed, h.segments, h.care_groups "
        "FROM (SELECT 1) one LEFT JOIN households h ON h.household_id = $2", community_id, household_id)
    return r[0], HouseholdRow(r[1], r[2], bytes(r[3]), list(r[4]), list(r[5])) if r[1] is not None else None


async def existing_communities(conn: Conn, ids: list[str]) -> set[str]:
    rows = await conn.fetch("SELECT community_id FROM communities WHERE community_id = ANY($1)", ids)
    return {r["community_id"] for r in rows}


async def insert_community(conn: Conn, community_id: str, name: str, kind: int) -> None:
    await conn.execute("INSERT INTO communities (community_id, name, kind) VALUES ($1, $2, $3)",
                       community_id, name, kind)


async def household(conn: Conn, household_id: str) -> HouseholdRow | None:
    r = await conn.fetchrow("SELECT household_id, community_id, address_sealed, segments, care_groups "
                            "FROM households WHERE household_id = $1", household_id)
    return HouseholdRow(r[0], r[1], bytes(r[2]), list(r[3]), list(r[4])) if r else None


async def insert_households(conn: Conn, rows: list[HouseholdRow]) -> None:
    await conn.execute(
        "INSERT INTO households (household_id, community_id, address_sealed, segments, care_groups) "
        "SELECT h, c, a, string_to_array(s, ',')::int[], string_to_array(g, ',')::int[] "
        "FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[], $5::text[]) AS t(h, c, a, s, g)",
        [r.household_id for r in rows], [r.community_id for r in rows], [r.address_sealed for r in rows],
        [",".join(map(str, r.segments)) for r in rows], [",".join(map(str, r.care_groups)) for r in rows],
    )


async def insert_residents(conn: Conn, rows: list[ResidentRow]) -> None:
    await conn.execute(
        "INSERT INTO residents (resident_id, household_id, community_id, segment, care_groups, name_sealed, "
        "phone_sealed, id_number_sealed) "
        "SELECT r, h, c, s, string_to_array(g, ',')::int[], n, p, i "
        "FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::bytea[], $7::bytea[], $8::bytea[]) "
        "AS t(r, h, c, s, g, n, p, i)",
        [r.resident_id for r in rows], [r.household_id for r in rows], [r.community_id for r in rows],
        [r.segment for r in rows], [",".join(map(str, r.care_groups)) for r in rows],
        [r.name_sealed for r in rows], [r.phone_sealed for r in rows], [r.id_number_sealed for r in rows],
    )


def _resident(r: asyncpg.Record) -> ResidentRow:
    return ResidentRow(r[0], r[1], r[2], r[3], list(r[4]), bytes(r[5]), bytes(r[6]), bytes(r[7]), r[8])


_RESIDENT_COLS = ("resident_id, household_id, community_id, segment, care_groups, name_sealed, phone_sealed, "
                  "id_number_sealed, erased")


async def resident(conn: Conn, resident_id: str) -> ResidentRow | None:
    r = await conn.fetchrow(f"SELECT {_RESIDENT_COLS} FROM residents WHERE resident_id = $1", resident_id)
    return _resident(r) if r else None


async def residents_of(conn: Conn, household_id: str) -> list[ResidentRow]:
    rows = await conn.fetch(f"SELECT {_RESIDENT_COLS} FROM residents WHERE household_id = $1 ORDER BY resident_id",
                            household_id)
    return [_resident(r) for r in rows]


async def mark_erased(conn: Conn, resident_id: str) -> None:
    await conn.execute("UPDATE residents SET erased = true WHERE resident_id = $1", resident_id)


async def others_unerased(conn: asyncpg.Connection, household_id: str, resident_id: str) -> bool:
    """Whether the household keeps a resident not erased besides `resident_id`. The
    household's row is locked first, in a statement of its own: two of its last residents
    erased at once then see each other's erasure (the second statement's snapshot is taken
    after the first erasure commits), and one of them erases the household."""
    await conn.execute("SELECT 1 FROM households WHERE household_id = $1 FOR UPDATE", household_id)
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM residents WHERE household_id = $1 "
                                    "AND resident_id <> $2 AND NOT erased)", household_id, resident_id))


async def list_households(conn: Conn, community_id: str, after: str, limit: int) -> list[tuple[HouseholdRow, int]]:
    rows = await conn.fetch(
        "SELECT h.household_id, h.community_id, h.address_sealed, h.segments, h.care_groups, "
        "(SELECT count(*) FROM residents r WHERE r.household_id = h.household_id) "
        "FROM households h WHERE h.community_id = $1 AND h.household_id > $2 ORDER BY h.household_id LIMIT $3",
        community_id, after, limit,
    )
    return [(HouseholdRow(r[0], r[1], bytes(r[2]), list(r[3]), list(r[4])), r[5]) for r in rows]


async def list_communities(conn: Conn, after: str, limit: int, only: list[str] | None = None) -> list:
    """Communities by id after `after`; only those of `only` when it is given (a cadre's)."""
    return await conn.fetch(
        "SELECT community_id, name, kind, registered_at FROM communities "
        "WHERE community_id > $1 AND ($2::text[] IS NULL OR community_id = ANY($2)) ORDER BY community_id LIMIT $3",
        after, only, limit,
    )


async def households_of_community(conn: Conn, community_id: str) -> list[str]:
    rows = await conn.fetch("SELECT household_id FROM households WHERE community_id = $1", community_id)
    return [r[0] for r in rows]


async def households_in(conn: Conn, community_id: str, ids: list[str]) -> set[str]:
    rows = await conn.fetch("SELECT household_id FROM households WHERE community_id = $1 AND household_id = ANY($2)",
                            community_id, ids)
    return {r[0] for r in rows}


async def insert_campaign(conn: Conn, c: CampaignRow, title: str, due: list[str]) -> None:
    await conn.execute(
        "INSERT INTO campaigns (campaign_id, community_id, title, starts_at, ends_at, whole_community) "
        "VALUES ($1, $2, $3, $4, $5, $6)", c.campaign_id, c.community_id, title, c.starts_at, c.ends_at,
        c.whole_community,
    )
    await conn.execute("INSERT INTO campaign_households SELECT $1, unnest($2::text[])", c.campaign_id, due)


async def visit_context(conn: Conn, campaign_id: str, household_id: str
                        ) -> tuple[CampaignRow | None, bool, HouseholdRow | None]:
    """A visit's campaign, whether the household is due in it, and the household: one
    round trip instead of three (RecordVisit is the commonest command)."""
    r = await conn.fetchrow(
        "SELECT c.campaign_id, c.community_id, c.starts_at, c.ends_at, c.whole_community, "
        "EXISTS (SELECT 1 FROM campaign_households d WHERE d.campaign_id = $1 AND d.household_id = $2), "
        "h.household_id, h.community_id, h.address_sealed, h.segments, h.care_groups "
        "FROM (SELECT 1) one LEFT JOIN campaigns c ON c.campaign_id = $1 "
        "LEFT JOIN households h ON h.household_id = $2", campaign_id, household_id)
    c = CampaignRow(*r[0:5]) if r[0] is not None else None
    h = HouseholdRow(r[6], r[7], bytes(r[8]), list(r[9]), list(r[10])) if r[6] is not None else None
    return c, bool(r[5]), h


async def insert_demand(tx, d) -> None:  # tx: the command's transaction; d: DemandRaised
    # No command reads demands back (only ListDemands): written with the command's events.
    await tx.insert_later("demands", (
        d.demand_id, d.community_id, d.household_id, d.resident_id, d.channel, d.urgency, d.category, d.description,
        d.raised_at.ToDatetime(tzinfo=UTC)))


async def list_demands(conn: Conn, community_id: str, channel: int, after: str, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM demands WHERE community_id = $1 AND ($2 = 0 OR channel = $2) AND demand_id > $3 "
        "ORDER BY demand_id LIMIT $4", community_id, channel, after, limit,
    )
