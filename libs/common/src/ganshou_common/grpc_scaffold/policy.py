"""Each RPC declares the roles it admits, next to its code:

    @admits(Role.TOWN_ADMIN, Role.COMMUNITY_CADRE)
    async def RegisterHousehold(self, request, context): ...

An RPC without a declaration admits nobody: forgetting one fails closed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ganshou_common.grpc_scaffold.auth import Role

F = TypeVar("F", bound=Callable[..., object])
_ATTR = "__ganshou_roles__"


def admits(*roles: Role) -> Callable[[F], F]:
    def mark(fn: F) -> F:
        setattr(fn, _ATTR, frozenset(roles))
        return fn

    return mark


def declared_roles(servicer: object, service_full_name: str) -> dict[str, frozenset[Role]]:
    """`/package.Service/Method` → roles, for every declared method of the servicer."""
    table: dict[str, frozenset[Role]] = {}
    for name in dir(type(servicer)):
        roles = getattr(getattr(type(servicer), name), _ATTR, None)
        if roles is not None:
            table[f"/{service_full_name}/{name}"] = roles
    return table
