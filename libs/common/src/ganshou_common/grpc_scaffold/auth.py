"""Bearer tokens (JWT): who the caller is, in which role, over which scope.

Tokens carry `sub`, `role` (one of Role) and a scope: `communities` (a list of community
ids) for cadres, `partner` for partner staff. Locally they are signed with a shared
secret (HS256); in production the organisation's identity provider signs them and we
verify with its public keys from a JWKS file.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import jwt

from ganshou_common.errors import PermissionDenied, Unauthenticated

ISSUER = "ganshou"
AUDIENCE = "ganshou"


class Role(StrEnum):
    TOWN_ADMIN = "town_admin"
    COMMUNITY_CADRE = "community_cadre"
    HOTLINE_OPERATOR = "hotline_operator"
    PARTNER_STAFF = "partner_staff"
    AUDITOR = "auditor"


ALL_ROLES = frozenset(Role)
# Roles whose scope is the whole town rather than a list of communities.
TOWN_WIDE = frozenset({Role.TOWN_ADMIN, Role.AUDITOR, Role.HOTLINE_OPERATOR})


@dataclass(frozen=True)
class Principal:
    subject: str
    role: Role
    communities: frozenset[str] = field(default_factory=frozenset)
    partner_id: str = ""

    def covers_community(self, community_id: str) -> bool:
        return self.role in TOWN_WIDE or community_id in self.communities

    def require_community(self, community_id: str) -> None:
        if not self.covers_community(community_id):
            raise PermissionDenied(f"{self.role} {self.subject} has no access to community {community_id!r}")

    def require_partner(self, partner_id: str) -> None:
        if self.role in (Role.TOWN_ADMIN, Role.AUDITOR):
            return
        if self.role != Role.PARTNER_STAFF or self.partner_id != partner_id:
            raise PermissionDenied(f"{self.role} {self.subject} has no access to partner {partner_id!r}")


class TokenVerifier:
    """Verifies tokens with a shared secret (local) or the public keys of a JWKS file."""

    def __init__(self, secret: str | None = None, jwks_path: Path | None = None, leeway_s: int = 30):
        if not secret and not jwks_path:
            raise ValueError("a token secret or a JWKS file is required")
        self._secret = secret
        self._jwks = jwt.PyJWKSet.from_dict(json.loads(jwks_path.read_text())) if jwks_path else None
        self._leeway = leeway_s
        # A client app sends the same token with every call until it expires: its signature
        # is checked once, then the verified principal is reused until its expiry (PyJWT's
        # decode was ~4% of a server's time under load).
        self._verified: dict[str, tuple[Principal, float]] = {}

    def _key_for(self, token: str) -> tuple[object, list[str]]:
        header = jwt.get_unverified_header(token)
        if self._jwks is not None:
            kid = header.get("kid")
            for key in self._jwks.keys:
                if key.key_id == kid:
                    return key.key, [key.algorithm_name]
            raise Unauthenticated(f"unknown signing key {kid!r}")
        return self._secret, ["HS256"]

    def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None and time.time() < known[1]:
            return known[0]
        principal, expires = self._verify(token)
        if len(self._verified) >= 10_000:
            self._verified.clear()
        self._verified[token] = (principal, expires)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            key, algorithms = self._key_for(token)
            claims = jwt.decode(
                token, key, algorithms=algorithms, audience=AUDIENCE, issuer=ISSUER, leeway=self._leeway,
                options={"require": ["exp", "sub", "role"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from None
        try:
            role = Role(claims["role"])
        except ValueError:
            raise Unauthenticated(f"unknown role {claims['role']!r}") from None
        communities = claims.get("communities", [])
        if not isinstance(communities, list) or not all(isinstance(c, str) for c in communities):
            raise Unauthenticated("communities must be a list of ids")
        principal = Principal(claims["sub"], role, frozenset(communities), str(claims.get("partner", "")))
        return principal, float(claims["exp"]) + self._leeway


def mint_token(
    secret: str,
    subject: str,
    role: Role | str,
    communities: list[str] | None = None,
    partner_id: str = "",
    ttl_s: int = 12 * 3600,
) -> str:
    """A locally signed token (HS256) for trying the APIs and for tests."""
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": subject, "role": str(Role(role)), "iat": now, "exp": now + ttl_s,
    }
    if communities:
        claims["communities"] = list(communities)
    if partner_id:
        claims["partner"] = partner_id
    return jwt.encode(claims, secret, algorithm="HS256")
