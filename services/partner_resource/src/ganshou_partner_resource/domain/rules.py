"""Partner-resource's rules, free of I/O: capacity, money, periods, and matching."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, tzinfo

from ganshou_common.errors import FailedPrecondition

_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def period_of(moment: datetime, zone: tzinfo) -> str:
    """Capacity is counted per calendar month of the town ("YYYY-MM"): a delivery at 01:00 on
    the 1st in Shanghai is that month's, though it is still the last day of the month before in UTC."""
    local = moment.astimezone(zone)
    return f"{local.year:04d}-{local.month:02d}"


def valid_period(period: str) -> bool:
    return bool(_PERIOD.match(period))


def check_capacity(capacity: int, used: int, person_times: int, override: bool) -> None:
    """A delivery beyond the period's capacity is refused unless explicitly overridden."""
    if used + person_times > capacity and not override:
        raise FailedPrecondition(
            f"over capacity: {used} of {capacity} person-times used this period, {person_times} more asked; "
            "set override_capacity to deliver anyway")


@dataclass(frozen=True)
class Candidate:
    offering_id: str
    partner_id: str
    category: str
    communities_served: tuple[str, ...]
    capacity: int
    used: int
    paired_with_community: bool
    published_order: int


def choose_offering(candidates: list[Candidate], community_id: str, need_category: str) -> Candidate | None:
    """The matching rule, in order:
    1. the offering's category is the need's category (exact, case-insensitive);
    2. it serves the community (listed, or an empty list meaning the whole town);
    3. it has free capacity this period;
    then prefer a partner paired with the community, then the most free capacity, then the
    offering published first (so ties are stable)."""
    fits = [c for c in candidates
            if c.category.lower() == need_category.lower()
            and (not c.communities_served or community_id in c.communities_served)
            and c.used < c.capacity]
    if not fits:
        return None
    return min(fits, key=lambda c: (not c.paired_with_community, -(c.capacity - c.used), c.published_order))
