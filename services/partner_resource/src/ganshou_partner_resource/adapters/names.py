"""One name, one entity: a partner's name in the town, an organisation's or a volunteer
team's in its community. A second registration of a name (a form sent twice with a new
request id, or a second clerk) would count one partner or organisation twice in the figures.

Names compare as people read them: Unicode NFKC (full-width letters and digits as their
ASCII twins), case folded, runs of spaces as one. Registrations of one kind and scope are
serialised by a transaction-scoped advisory lock, so two at once cannot both find the name free.
"""

from __future__ import annotations

import unicodedata
from typing import TypeVar

from google.protobuf.message import Message

M = TypeVar("M", bound=Message)


def same_name(a: str, b: str) -> bool:
    return _normal(a) == _normal(b)


def _normal(name: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", name).split()).casefold()


async def holders(conn, kind: str, cls: type[M], name: str, community_id: str = "") -> list[M]:
    """The entities of `kind` (in the community, when given) already named `name`. Call it
    in the registering command's transaction: it holds the kind's lock until commit."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"names:{kind}:{community_id}")
    rows = await conn.fetch("SELECT body FROM views WHERE kind = $1 AND ($2 = '' OR community_ids @> ARRAY[$2])",
                            kind, community_id)
    return [m for m in (cls.FromString(r["body"]) for r in rows) if same_name(m.name, name)]
