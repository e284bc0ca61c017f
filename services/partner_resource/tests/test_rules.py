"""Partner-resource's rules without infrastructure: capacity and the matching rule."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from ganshou_common.errors import FailedPrecondition
from ganshou_partner_resource.domain.rules import Candidate, check_capacity, choose_offering, period_of, valid_period


def offer(i: str, category="clinic", communities=(), capacity=10, used=0, paired=False, order=0) -> Candidate:
    return Candidate(i, f"p-{i}", category, tuple(communities), capacity, used, paired, order)


def test_capacity_is_refused_beyond_the_period_unless_overridden() -> None:
    check_capacity(10, 7, 3, override=False)
    with pytest.raises(FailedPrecondition, match="over capacity"):
        check_capacity(10, 8, 3, override=False)
    check_capacity(10, 8, 3, override=True)


def test_matching_needs_category_community_and_free_capacity() -> None:
    assert choose_offering([offer("a", category="legal")], "c1", "clinic") is None
    assert choose_offering([offer("a", communities=["c2"])], "c1", "clinic") is None
    assert choose_offering([offer("a", used=10)], "c1", "clinic") is None
    assert choose_offering([offer("a", communities=["c1"])], "c1", "CLINIC").offering_id == "a"


def test_matching_prefers_the_paired_partner_then_free_capacity_then_the_first_published() -> None:
    pool = [offer("roomy", capacity=100, order=1), offer("paired", paired=True, capacity=5, order=2),
            offer("also-roomy", capacity=100, order=0)]
    assert choose_offering(pool, "c1", "clinic").offering_id == "paired"
    assert choose_offering(pool[:1] + pool[2:], "c1", "clinic").offering_id == "also-roomy"


def test_periods_are_months() -> None:
    assert valid_period("2026-11") and not valid_period("2026-13") and not valid_period("26-1")


@pytest.mark.parametrize("utc, shanghai, utc_month", [
    (datetime(2026, 11, 30, 15, 59, tzinfo=UTC), "2026-11", "2026-11"),
    (datetime(2026, 11, 30, 16, 0, tzinfo=UTC), "2026-12", "2026-11"),  # midnight of 1 December in Shanghai
    (datetime(2026, 12, 31, 16, 0, tzinfo=UTC), "2027-01", "2026-12"),
])
def test_a_period_is_the_towns_calendar_month(utc, shanghai, utc_month) -> None:
    assert period_of(utc, ZoneInfo("Asia/Shanghai")) == shanghai
    assert period_of(utc, UTC) == utc_month
