"""The views read model: one row per entity with its protobuf view."""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import Message

M = TypeVar("M", bound=Message)


async def put(conn, kind: str, id_: str, body: Message, partner_id: str = "", communities: list[str] | None = None,
              extra: str = "") -> None:
    await conn.execute(
        "INSERT INTO views (kind, id, partner_id, community_ids, extra, body) VALUES ($1, $2, $3, $4, $5, $6) "
        "ON CONFLICT (kind, id) DO UPDATE SET body = EXCLUDED.body, partner_id = EXCLUDED.partner_id, "
        "community_ids = EXCLUDED.community_ids, extra = EXCLUDED.extra",
        kind, id_, partner_id, communities or [], extra, body.SerializeToString())


async def get(conn, kind: str, id_: str, cls: type[M], lock: bool = False) -> M | None:
    body = await conn.fetchval(f"SELECT body FROM views WHERE kind = $1 AND id = $2{' FOR UPDATE' if lock else ''}",
                               kind, id_)
    return cls.FromString(body) if body is not None else None


async def page(conn, kind: str, cls: type[M], *, after: str, limit: int, partner_id: str = "",
               community_id: str = "", extra: str = "", any_community: bool = False) -> list[M]:
    """A page in id order; community_id matches rows listing it (or, with any_community,
    rows that list no community: town-wide offerings)."""
    rows = await conn.fetch(
        "SELECT body FROM views WHERE kind = $1 AND id > $2 AND ($3 = '' OR partner_id = $3) "
        "AND ($4 = '' OR community_ids @> ARRAY[$4] OR ($6 AND community_ids = '{}')) AND ($5 = '' OR extra = $5) "
        "ORDER BY id LIMIT $7", kind, after, partner_id, community_id, extra, any_community, limit)
    return [cls.FromString(r["body"]) for r in rows]


async def of_partner(conn, kind: str, cls: type[M], partner_id: str, extra: str = "") -> list[M]:
    """Every row of `kind` a partner has (with that `extra`, when given), locked for update."""
    rows = await conn.fetch("SELECT body FROM views WHERE kind = $1 AND partner_id = $2 AND ($3 = '' OR extra = $3) "
                            "ORDER BY id FOR UPDATE", kind, partner_id, extra)
    return [cls.FromString(r["body"]) for r in rows]
