"""The checks every request gets before its handler: times of this century, text without NUL."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ganshou.intake.v1 import intake_service_pb2 as api
from ganshou_common.errors import InvalidArgument
from ganshou_common.validation import check_request


def test_bad_times_and_nul_characters_are_named_by_field() -> None:
    req = api.RegisterHouseholdRequest(address="a\x00b", residents=[api.ResidentInput(name="x"),
                                                                     api.ResidentInput(name="\x00")])
    with pytest.raises(InvalidArgument) as caught:
        check_request(req)
    assert [v.field for v in caught.value.violations] == ["address", "residents[1].name"]
    with pytest.raises(InvalidArgument) as caught:
        check_request(api.OpenVisitCampaignRequest(starts_at={"seconds": 253402300800}, ends_at={"nanos": -1}))
    assert [v.field for v in caught.value.violations] == ["starts_at", "ends_at"]
    # Year 1 exactly is what asyncpg would store as -infinity; 2100 no town's service has reached.
    for seconds in (-62135596800, 946684799, 4102444800):
        with pytest.raises(InvalidArgument) as caught:
            check_request(api.LogHotlineCallRequest(received_at={"seconds": seconds}))
        assert [v.field for v in caught.value.violations] == ["received_at"]


@given(st.integers(946684800, 4102444799), st.integers(0, 999_999_999), st.text().filter(lambda s: "\x00" not in s))
def test_every_valid_time_and_text_passes(seconds: int, nanos: int, title: str) -> None:
    check_request(api.OpenVisitCampaignRequest(title=title, starts_at={"seconds": seconds, "nanos": nanos}))
