"""The shared field checks for times, days, periods, counts and amounts: what a town could
have, told with the field's name."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ganshou_common.errors import InvalidArgument
from ganshou_common.validation import LEEWAY, MAX_COUNT, MAX_FEN, Violations

NOW = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


def _refused(check) -> list[str]:
    v = Violations()
    check(v)
    try:
        v.raise_if_any()
    except InvalidArgument as exc:
        return [f.field for f in exc.violations]
    return []


def test_a_time_when_something_happened_is_not_later_than_now_and_a_clocks_leeway() -> None:
    assert _refused(lambda v: v.not_in_future("received_at", NOW + LEEWAY, NOW)) == []
    assert _refused(lambda v: v.not_in_future("received_at", NOW - timedelta(days=400), NOW)) == []
    assert _refused(lambda v: v.not_in_future("received_at", NOW + LEEWAY + timedelta(seconds=1), NOW)) == ["received_at"]



def test_a_time_logged_soon_after_is_neither_later_than_now_nor_older_than_its_window() -> None:
    week = timedelta(days=7)
    assert _refused(lambda v: v.recent("received_at", NOW - week, NOW, week)) == []
    assert _refused(lambda v: v.recent("received_at", NOW + LEEWAY, NOW, week)) == []
    assert _refused(lambda v: v.recent("received_at", NOW - week - timedelta(seconds=1), NOW, week)) == ["received_at"]
    assert _refused(lambda v: v.recent("received_at", datetime(1, 1, 1, tzinfo=UTC), NOW, week)) == ["received_at"]
    assert _refused(lambda v: v.recent("received_at", NOW + timedelta(hours=1), NOW, week)) == ["received_at"]


@pytest.mark.parametrize(("day", "ok"), [
    ("2026-11-30", True), ("2026-12-01", False), ("2026-12-02", False), ("2026-02-30", False), ("2026-13-01", False), ("26-11-30", False), ("", False),
    ("2026-11-30T00:00", False), ("1999-01-01", True),
])
def test_a_day_is_on_the_calendar_and_begun(day: str, ok: bool) -> None:
    assert _refused(lambda v: v.day("date", day, NOW)) == ([] if ok else ["date"])


def test_a_day_begun_east_of_utc_is_taken() -> None:
    evening = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)  # 1 December already at UTC+8 (01:00)
    assert _refused(lambda v: v.day("date", "2026-12-01", evening)) == []


@pytest.mark.parametrize(("period", "ok"), [
    ("2026H2", True), ("2026H1", True), ("2020H1", True), ("2027H1", False), ("2026H3", False),
    ("2026-H2", False), ("2026 下半年", False), ("", False),
])
def test_a_half_year_has_one_name_and_has_begun(period: str, ok: bool) -> None:
    assert _refused(lambda v: v.half_year("period", period, NOW)) == ([] if ok else ["period"])


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_counts_and_amounts_stay_within_what_a_town_could_have(n: int) -> None:
    assert (_refused(lambda v: v.count("person_times", n)) == []) == (1 <= n <= MAX_COUNT)
    assert (_refused(lambda v: v.count("evening", n, at_least=0)) == []) == (0 <= n <= MAX_COUNT)
    assert (_refused(lambda v: v.fen("amount.fen", n)) == []) == (1 <= n <= MAX_FEN)


@given(st.text(max_size=60))
def test_a_page_token_round_trips_and_anything_else_is_refused_by_name(key: str) -> None:
    from ganshou_common.validation import decode_page_token, encode_page_token

    assert decode_page_token(encode_page_token(key)) == key
    for bad in ("garbage!!", "ééé", base64.urlsafe_b64encode(b"after:\xff\xfe").decode(), "YWZ0ZXI"):
        with pytest.raises(InvalidArgument) as caught:
            decode_page_token(bad)
        assert [v.field for v in caught.value.violations] == ["page_token"]


@given(st.lists(st.integers(min_value=-3, max_value=9), max_size=4))
def test_an_enum_takes_its_own_values_but_unspecified_and_names_each_other(values: list[int]) -> None:
    from ganshou.common.v1 import types_pb2 as t

    known = set(t.Segment.values()) - {0}
    assert _refused(lambda v: v.enum("segment", values[0] if values else 0, t.Segment)) == (
        [] if values and values[0] in known else ["segment"])
    assert _refused(lambda v: v.enums("segments", values, t.Segment)) == [
        f"segments[{i}]" for i, x in enumerate(values) if x not in known]
