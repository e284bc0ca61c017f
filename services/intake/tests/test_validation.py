"""Intake's field rules, without infrastructure."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ganshou.common.v1 import types_pb2 as t
from ganshou.intake.v1 import intake_service_pb2 as api
from ganshou_common.validation import Violations
from ganshou_intake.domain.validation import check_household, valid_id_number, valid_phone


def with_check(body: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights)) % 11]


def test_phone_numbers() -> None:
    assert valid_phone("13800138000") and valid_phone("021-58551234") and valid_phone("02158551234")
    for bad in ("12800138000", "1380013800", "138001380001", "abc", "", "+8613800138000"):
        assert not valid_phone(bad)


def test_id_numbers_need_the_right_check_character() -> None:
    good = with_check("11010519491231002")
    assert good == "11010519491231002X" and valid_id_number(good) and valid_id_number(good.lower())
    assert not valid_id_number("110105194912310021")
    assert not valid_id_number("1101051949123100")


@given(st.from_regex(r"\A\d{17}\Z"))
def test_every_body_has_exactly_one_check_character(body: str) -> None:
    assert sum(valid_id_number(body + c) for c in "0123456789X") == 1


def test_one_person_is_not_two_residents_of_a_household() -> None:
    me = with_check("11010519491231002")
    household = api.RegisterHouseholdRequest(
        community_id="zj-01", address="科苑路 1 号", segments=[t.SEGMENT_LOCAL],
        residents=[api.ResidentInput(name=n, id_number=i, segment=t.SEGMENT_LOCAL)
                   for n, i in (("张三", me), ("李四", ""), ("王五", ""), ("张三", me.lower()))])
    v = Violations()
    check_household(v, household)
    assert [(f.field, f.description) for f in v.items] == [
        ("residents[3].id_number", "the same ID number as residents[0]: one person")]
