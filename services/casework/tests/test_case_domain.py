"""The Case aggregate as stories: command in, events and state out. No infrastructure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ganshou.casework.v1 import casework_service_pb2 as api
from ganshou.casework.v1 import events_pb2 as ev
from ganshou.common.v1 import types_pb2 as t
from ganshou.intake.v1 import events_pb2 as intake
from ganshou_casework.domain.case import Case
from ganshou_casework.domain.promises import PromisePolicy
from ganshou_common.errors import FailedPrecondition

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def opened(channel=t.CHANNEL_HOTLINE, urgency=t.URGENCY_NORMAL, policy=PromisePolicy()) -> Case:
    demand = intake.DemandRaised(demand_id="d1", community_id="c1", channel=channel, urgency=urgency, category="water")
    case = Case()
    case.apply(Case.open("k1", demand, policy, T0))
    return case


def do(case: Case, events) -> list[str]:
    for e in events:
        case.apply(e)
    return [type(e).__name__ for e in events]


def test_a_hotline_demand_promises_a_response_within_an_hour() -> None:
    case = opened()
    assert [(p.kind, p.due_at) for p in case.promises.values()] == [(ev.PROMISE_KIND_RESPONSE, T0 + timedelta(hours=1))]
    assert do(case, case.respond("op", "", T0 + timedelta(minutes=20))) == ["CaseResponded", "PromiseKept"]


def test_an_emergency_promises_someone_on_site_within_15_minutes_and_arriving_responds() -> None:
    case = opened(urgency=t.URGENCY_EMERGENCY)
    assert {p.kind for p in case.promises.values()} == {ev.PROMISE_KIND_RESPONSE, ev.PROMISE_KIND_ON_SITE}
    late = T0 + timedelta(minutes=20)
    assert do(case, case.arrive("cadre", late)) == ["CaseResponded", "PromiseKept", "OnSiteArrived", "PromiseBroken"]
    assert case.promises[ev.PROMISE_KIND_ON_SITE].state == "broken"


def test_timers_break_unmet_promises_once() -> None:
    case = opened(urgency=t.URGENCY_EMERGENCY)
    assert case.overdue_promises(T0 + timedelta(minutes=10)) == []
    assert do(case, case.overdue_promises(T0 + timedelta(minutes=16))) == ["PromiseBroken"]
    assert do(case, case.overdue_promises(T0 + timedelta(hours=2))) == ["PromiseBroken"]  # the response one
    assert case.overdue_promises(T0 + timedelta(hours=3)) == []


def test_promises_follow_the_policy_by_channel_and_category() -> None:
    policy = PromisePolicy.parse(30, 10, "water:on_site=5")
    case = opened(urgency=t.URGENCY_EMERGENCY, policy=policy)
    assert sorted(p.due_at - T0 for p in case.promises.values()) == [timedelta(minutes=5), timedelta(minutes=30)]
    assert opened(channel=t.CHANNEL_FORM).promises == {}


def test_the_whole_lifecycle_to_a_rating_and_a_reopening() -> None:
    case = opened()
    do(case, case.respond("op", "", T0))
    do(case, case.triage(ev.TRACK_SOLVE_NOW, "livelihood"))
    do(case, case.assign(ev.ASSIGNEE_KIND_CADRE, "cadre-7"))
    do(case, case.resolve("fixed the pipe", T0))
    assert do(case, case.rate(2, "still leaking")) == ["SatisfactionRated", "CaseClosed"]
    assert case.status == api.CASE_STATUS_CLOSED
    assert do(case, case.reopen("resident unhappy")) == ["CaseReopened"]
    assert case.status == api.CASE_STATUS_RESPONDED and case.reopen_count == 1


@pytest.mark.parametrize("action", [
    lambda c: c.rate(5, ""), lambda c: c.resolve("x", T0), lambda c: c.explain("x", T0),
    lambda c: c.assign(ev.ASSIGNEE_KIND_CADRE, "x"), lambda c: c.reopen("x"), lambda c: c.follow_up(True, ""),
])
def test_illegal_transitions_on_a_new_case_are_refused(action) -> None:
    with pytest.raises(FailedPrecondition):
        action(opened())


def test_a_refusal_tells_the_step_the_case_needs_first() -> None:
    case = opened()
    with pytest.raises(FailedPrecondition, match="respond to it, then triage it"):
        case.resolve("x", T0)
    with pytest.raises(FailedPrecondition, match="respond to it first"):
        case.triage(ev.TRACK_SOLVE_NOW, "")
    do(case, case.respond("op", "", T0))
    with pytest.raises(FailedPrecondition, match="triage it to a track first"):
        case.resolve("x", T0)
    with pytest.raises(FailedPrecondition, match="rated and followed up once resolved or explained"):
        case.rate(5, "")
    with pytest.raises(FailedPrecondition, match="only a closed case is reopened"):
        case.reopen("x")
    with pytest.raises(FailedPrecondition, match=r"it is CASE_STATUS_RESPONDED$"):
        case.respond("op", "", T0)  # nothing to do first: already done


def test_a_linked_case_points_to_its_primary() -> None:
    primary, dup, third = opened(), opened(), opened()
    primary.case_id, dup.case_id, third.case_id = "k-primary", "k-dup", "k-third"
    events, _ = dup.link_to(primary)
    do(dup, events)
    with pytest.raises(FailedPrecondition, match="linked to k-primary: work on that case"):
        dup.respond("op", "", T0)
    with pytest.raises(FailedPrecondition, match="itself linked to k-primary: link to that case instead"):
        third.link_to(dup)


def test_explain_only_on_the_explain_or_long_term_tracks_and_a_happy_case_stays_closed() -> None:
    case = opened()
    do(case, case.respond("op", "", T0))
    do(case, case.triage(ev.TRACK_SOLVE_SOON, ""))
    with pytest.raises(FailedPrecondition):
        case.explain("policy", T0)
    do(case, case.triage(ev.TRACK_EXPLAIN, "policy"))
    with pytest.raises(FailedPrecondition):
        case.resolve("x", T0)
    do(case, case.explain("the policy is…", T0))
    do(case, case.rate(5, "thank you"))
    with pytest.raises(FailedPrecondition):
        case.reopen("changed my mind")
    assert do(case, case.follow_up(False, "water is back off")) == ["FollowUpRecorded", "CaseReopened"]


def test_a_repeated_report_links_as_a_contact_and_withdraws_its_promises() -> None:
    primary, dup = opened(), opened()
    dup.case_id = "k2"
    mine, theirs = dup.link_to(primary)
    do(dup, mine)
    do(primary, theirs)
    assert dup.status == api.CASE_STATUS_LINKED and primary.contacts == 2
    assert dup.overdue_promises(T0 + timedelta(days=1)) == []


def test_a_partner_leaving_hands_its_open_case_back_and_no_other() -> None:
    case = opened()
    do(case, case.respond("op", "", T0))
    do(case, case.triage(ev.TRACK_SOLVE_SOON, ""))
    do(case, case.assign(ev.ASSIGNEE_KIND_PARTNER, "p1", "p1"))
    assert case.partner_left("p2", "left") == []
    assert do(case, case.partner_left("p1", "left")) == ["CaseAssignmentEnded"]
    assert (case.status, case.partner_id, case.assignee_id) == (api.CASE_STATUS_TRIAGED, "", "")
    assert case.partner_left("p1", "left") == []  # once
    do(case, case.assign(ev.ASSIGNEE_KIND_PARTNER, "p3", "p3"))
    do(case, case.resolve("done", T0))
    assert case.partner_left("p3", "left") == []  # a resolved case keeps its history
