"""Casework end to end on the real stack: gRPC, PostgreSQL, Kafka."""

from __future__ import annotations

import asyncio
import base64
import signal
import uuid
from pathlib import Path

import asyncpg
import grpc
import pytest

from ganshou.casework.v1 import casework_service_pb2 as api
from ganshou.casework.v1 import events_pb2 as ev
from ganshou.common.v1 import types_pb2 as t
from ganshou.partner_resource.v1 import events_pb2 as pev
from ganshou_casework.app.bootstrap import build_consumer, build_partner_consumer
from ganshou_casework.domain.promises import PromisePolicy
from ganshou_common.grpc_scaffold.auth import Role
from ganshou_common.grpc_scaffold.errors import field_violations
from ganshou_common.testing.procs import free_port, kill, spawn_module

from .conftest import demand_envelope, new_topic, partner_envelope, publish

pytestmark = pytest.mark.integration


def rid() -> str:
    return uuid.uuid4().hex


async def error_of(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value


async def test_a_demand_on_kafka_becomes_one_case_even_delivered_twice(casework, community_id, kafka_bootstrap,
                                                                      monkeypatch) -> None:
    topic = await new_topic(kafka_bootstrap)
    env = demand_envelope(community_id)
    other = demand_envelope(community_id, urgency=t.URGENCY_EMERGENCY)
    await publish(kafka_bootstrap, topic, [env, other, env, env])
    monkeypatch.setenv("CASEWORK_SOURCE_TOPICS", topic)
    monkeypatch.setenv("CASEWORK_CONSUMER_GROUP", f"test-{uuid.uuid4().hex[:8]}")
    consumer = build_consumer(casework.app, kafka_bootstrap)
    task = asyncio.create_task(consumer.run())
    admin = Role.TOWN_ADMIN
    try:
        async with asyncio.timeout(30):
            while True:
                listed = await casework.stub.ListCases(api.ListCasesRequest(community_id=community_id),
                                                       metadata=casework.auth(admin))
                if len(listed.cases) >= 2:
                    break
                await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # time for a wrongful second case to show
    finally:
        consumer.stop()
        await task
    listed = await casework.stub.ListCases(api.ListCasesRequest(community_id=community_id), metadata=casework.auth(admin))
    assert len(listed.cases) == 2
    conn = await asyncpg.connect(casework.dsn)
    assert await conn.fetchval("SELECT count(*) FROM events WHERE event_type = 'ganshou.casework.v1.CaseOpened'") == 2
    await conn.close()


async def test_the_whole_lifecycle_through_grpc(casework, community_id) -> None:
    cadre = casework.auth(Role.COMMUNITY_CADRE, community_id, subject="cadre-3")
    case_id = await casework.open_case(community_id)
    s = casework.stub
    r = await s.RespondToCase(api.RespondToCaseRequest(request_id=rid(), case_id=case_id, note="收到"), metadata=cadre)
    assert r.case.status == api.CASE_STATUS_RESPONDED
    assert r.case.promises[0].state == "kept"
    await s.TriageCase(api.TriageCaseRequest(request_id=rid(), case_id=case_id, track=ev.TRACK_SOLVE_NOW), metadata=cadre)
    post = await s.EstablishPost(api.EstablishPostRequest(request_id=rid(), community_id=community_id,
                                                          kind=ev.POST_KIND_SAFETY_PATROL, holder="张师傅"), metadata=cadre)
    await s.AssignCase(api.AssignCaseRequest(request_id=rid(), case_id=case_id, assignee_id=post.post_id,
                                             assignee_kind=ev.ASSIGNEE_KIND_RESPONSIBILITY_POST), metadata=cadre)
    await s.RecordOnSiteArrival(api.RecordOnSiteArrivalRequest(request_id=rid(), case_id=case_id), metadata=cadre)
    await s.AddCaseNote(api.AddCaseNoteRequest(request_id=rid(), case_id=case_id, text="换了阀门"), metadata=cadre)
    await s.ResolveCase(api.ResolveCaseRequest(request_id=rid(), case_id=case_id, summary="已修复"), metadata=cadre)
    rated = await s.RateSatisfaction(api.RateSatisfactionRequest(request_id=rid(), case_id=case_id, score=1,
                                                                 comment="又坏了"), metadata=cadre)
    assert rated.case.status == api.CASE_STATUS_CLOSED and rated.case.last_score == 1
    reopened = await s.ReopenCase(api.ReopenCaseRequest(request_id=rid(), case_id=case_id, reason="居民不满意"),
                                  metadata=cadre)
    assert reopened.case.status == api.CASE_STATUS_RESPONDED and reopened.case.reopen_count == 1
    got = await s.GetCase(api.GetCaseRequest(case_id=case_id), metadata=cadre)
    assert [h.event_type.rsplit(".", 1)[1] for h in got.case.history] == [
        "CaseOpened", "CaseResponded", "PromiseKept", "CaseTriaged", "CaseAssigned", "OnSiteArrived", "CaseNoteAdded",
        "CaseResolved", "SatisfactionRated", "CaseClosed", "CaseReopened"]
    assert got.case.history[6].actor == "cadre-3" and "换了阀门" in got.case.history[6].detail


async def test_illegal_transitions_and_bad_input_are_refused_and_change_nothing(casework, community_id) -> None:
    admin = casework.auth(Role.TOWN_ADMIN)
    case_id = await casework.open_case(community_id)
    err = await error_of(casework.stub.RateSatisfaction(api.RateSatisfactionRequest(
        request_id=rid(), case_id=case_id, score=5), metadata=admin))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    err = await error_of(casework.stub.RateSatisfaction(api.RateSatisfactionRequest(
        request_id=rid(), case_id=case_id, score=9), metadata=admin))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "score" in field_violations(err)
    err = await error_of(casework.stub.TriageCase(api.TriageCaseRequest(request_id=rid(), case_id=case_id),
                                                  metadata=admin))
    assert "track" in field_violations(err)
    err = await error_of(casework.stub.GetCase(api.GetCaseRequest(case_id="nope"), metadata=admin))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    got = await casework.stub.GetCase(api.GetCaseRequest(case_id=case_id), metadata=admin)
    assert got.case.version == 1 and got.case.status == api.CASE_STATUS_OPEN


async def test_a_case_is_found_by_its_demand_and_listed_newest_first(casework, community_id) -> None:
    admin = casework.auth(Role.TOWN_ADMIN)
    demands = [str(uuid.uuid4()) for _ in range(5)]
    cases = [await casework.open_case(community_id, demand_id=d) for d in demands]  # opened one after another
    got = await casework.stub.GetCase(api.GetCaseRequest(demand_id=demands[2]), metadata=admin)
    assert got.case.case_id == cases[2] and got.case.demand_id == demands[2]
    err = await error_of(casework.stub.GetCase(api.GetCaseRequest(demand_id=str(uuid.uuid4())), metadata=admin))
    assert err.code() == grpc.StatusCode.NOT_FOUND and "demand" in err.details()
    err = await error_of(casework.stub.GetCase(api.GetCaseRequest(case_id=cases[0], demand_id=demands[0]),
                                               metadata=admin))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "demand_id" in field_violations(err)
    err = await error_of(casework.stub.GetCase(api.GetCaseRequest(), metadata=admin))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "case_id" in field_violations(err)
    listed, token = [], ""
    while True:
        page = await casework.stub.ListCases(api.ListCasesRequest(community_id=community_id, page_size=2,
                                                                  page_token=token), metadata=admin)
        listed += [c.case_id for c in page.cases]
        if not (token := page.next_page_token):
            break
    assert listed == cases[::-1]
    err = await error_of(casework.stub.ListCases(api.ListCasesRequest(
        community_id=community_id, page_token=base64.urlsafe_b64encode(b"after:yesterday|x").decode()), metadata=admin))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in field_violations(err)


async def test_the_towns_roles_list_every_communitys_cases_and_a_cadre_names_one(casework, community_id) -> None:
    other = f"c-{uuid.uuid4().hex[:8]}"
    opened = [await casework.open_case(c) for c in (community_id, other, community_id)]

    async def listed(md, **kw) -> list[str]:
        return [k.case_id for k in (await casework.stub.ListCases(api.ListCasesRequest(**kw), metadata=md)).cases]

    newest = opened[::-1]
    for role in (Role.TOWN_ADMIN, Role.AUDITOR, Role.HOTLINE_OPERATOR):  # no community named: the whole town's
        assert await listed(casework.auth(role), page_size=3) == newest
    page = await casework.stub.ListCases(api.ListCasesRequest(page_size=2), metadata=casework.auth(Role.TOWN_ADMIN))
    rest = await listed(casework.auth(Role.TOWN_ADMIN), page_size=1, page_token=page.next_page_token)
    assert [k.case_id for k in page.cases] + rest == newest
    err = await error_of(casework.stub.ListCases(api.ListCasesRequest(),
                                                 metadata=casework.auth(Role.COMMUNITY_CADRE, community_id)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "community_id" in field_violations(err)


async def test_scopes_other_community_and_partner_staff(casework, community_id) -> None:
    case_id = await casework.open_case(community_id)
    conn = await asyncpg.connect(casework.dsn)
    await conn.execute("INSERT INTO known_partners (partner_id, name) VALUES ('p-1', '上海中医药大学')")
    await conn.close()
    other = casework.auth(Role.COMMUNITY_CADRE, "c-other")
    for call in (casework.stub.GetCase(api.GetCaseRequest(case_id=case_id), metadata=other),
                 casework.stub.RespondToCase(api.RespondToCaseRequest(request_id=rid(), case_id=case_id), metadata=other),
                 casework.stub.ListCases(api.ListCasesRequest(community_id=community_id), metadata=other)):
        assert (await error_of(call)).code() == grpc.StatusCode.PERMISSION_DENIED
    partner = casework.auth(Role.PARTNER_STAFF, partner="p-1")
    assert (await error_of(casework.stub.GetCase(api.GetCaseRequest(case_id=case_id), metadata=partner))).code() == \
        grpc.StatusCode.PERMISSION_DENIED
    admin = casework.auth(Role.TOWN_ADMIN)
    await casework.stub.RespondToCase(api.RespondToCaseRequest(request_id=rid(), case_id=case_id), metadata=admin)
    await casework.stub.TriageCase(api.TriageCaseRequest(request_id=rid(), case_id=case_id, track=ev.TRACK_SOLVE_SOON),
                                   metadata=admin)
    await casework.stub.AssignCase(api.AssignCaseRequest(request_id=rid(), case_id=case_id, assignee_id="p-1",
                                                         assignee_kind=ev.ASSIGNEE_KIND_PARTNER), metadata=admin)
    got = await casework.stub.GetCase(api.GetCaseRequest(case_id=case_id), metadata=partner)
    assert got.case.partner_id == "p-1"
    await casework.stub.ResolveCase(api.ResolveCaseRequest(request_id=rid(), case_id=case_id, summary="done"),
                                    metadata=partner)


async def test_a_case_goes_to_known_partners_only_and_back_when_its_partner_leaves(
        casework, community_id, kafka_bootstrap, monkeypatch) -> None:
    """Assigning to a partner casework has not heard of, or one that left, would leave the case
    waiting on nobody: refused. A partner leaving hands its open cases back to be assigned again."""
    admin = casework.auth(Role.TOWN_ADMIN)
    partner_id = f"p-{uuid.uuid4().hex[:8]}"
    staff = casework.auth(Role.PARTNER_STAFF, partner=partner_id)
    case_id = await casework.open_case(community_id)
    await casework.stub.RespondToCase(api.RespondToCaseRequest(request_id=rid(), case_id=case_id), metadata=admin)
    await casework.stub.TriageCase(api.TriageCaseRequest(request_id=rid(), case_id=case_id, track=ev.TRACK_SOLVE_SOON),
                                   metadata=admin)

    def assign():
        return casework.stub.AssignCase(api.AssignCaseRequest(
            request_id=rid(), case_id=case_id, assignee_id=partner_id, assignee_kind=ev.ASSIGNEE_KIND_PARTNER),
            metadata=admin)

    err = await error_of(assign())
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "assignee_id" in field_violations(err)
    err = await error_of(casework.stub.AssignCase(api.AssignCaseRequest(request_id=rid(), assignee_id=partner_id),
                                                  metadata=admin))
    assert set(field_violations(err)) == {"case_id", "assignee_kind"}  # told together, before any look-up

    topic = await new_topic(kafka_bootstrap)
    monkeypatch.setenv("CASEWORK_PARTNER_TOPICS", topic)
    monkeypatch.setenv("CASEWORK_CONSUMER_GROUP", f"test-{uuid.uuid4().hex[:8]}")
    consumer = build_partner_consumer(casework.app, kafka_bootstrap)
    task = asyncio.create_task(consumer.run())
    try:
        await publish(kafka_bootstrap, topic, [partner_envelope(pev.PartnerRegistered(
            partner_id=partner_id, name="上海中医药大学", kind=pev.PARTNER_KIND_UNIVERSITY))])
        async with asyncio.timeout(30):
            while True:
                try:
                    assigned = await assign()
                    break
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
                    await asyncio.sleep(0.2)
        assert assigned.case.status == api.CASE_STATUS_ASSIGNED and assigned.case.partner_id == partner_id
        await casework.stub.GetCase(api.GetCaseRequest(case_id=case_id), metadata=staff)

        await publish(kafka_bootstrap, topic, [partner_envelope(pev.PartnerLeft(partner_id=partner_id,
                                                                                reason="合作到期"), version=2)])
        async with asyncio.timeout(30):
            while (case := (await casework.stub.GetCase(api.GetCaseRequest(case_id=case_id),
                                                        metadata=admin)).case).partner_id:
                await asyncio.sleep(0.2)
    finally:
        consumer.stop()
        await task
    assert case.status == api.CASE_STATUS_TRIAGED and case.assignee_id == ""
    assert case.history[-1].event_type == "ganshou.casework.v1.CaseAssignmentEnded" and "合作到期" in case.history[-1].detail
    # Its staff no longer work the case; it cannot be assigned to the partner gone.
    assert (await error_of(casework.stub.GetCase(api.GetCaseRequest(case_id=case_id), metadata=staff))).code() == \
        grpc.StatusCode.PERMISSION_DENIED
    err = await error_of(assign())
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "has left" in field_violations(err)["assignee_id"]


async def test_an_assignment_waits_for_its_partner_leaving_and_is_then_refused(casework, community_id) -> None:
    """AssignCase reads the partner under the lock the partner's leaving takes: one racing the
    other cannot leave a case with a partner gone."""
    admin = casework.auth(Role.TOWN_ADMIN)
    partner_id = f"p-{uuid.uuid4().hex[:8]}"
    case_id = await casework.open_case(community_id)
    await casework.stub.RespondToCase(api.RespondToCaseRequest(request_id=rid(), case_id=case_id), metadata=admin)
    await casework.stub.TriageCase(api.TriageCaseRequest(request_id=rid(), case_id=case_id, track=ev.TRACK_SOLVE_SOON),
                                   metadata=admin)
    conn = await asyncpg.connect(casework.dsn)
    try:
        await conn.execute("INSERT INTO known_partners (partner_id, name) VALUES ($1, 'P')", partner_id)
        async with conn.transaction():  # the partners consumer, mid-way through PartnerLeft
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('casework-partner:' || $1, 0))",
                               partner_id)
            await conn.execute("UPDATE known_partners SET left_at = now() WHERE partner_id = $1", partner_id)
            assign = asyncio.ensure_future(casework.stub.AssignCase(api.AssignCaseRequest(
                request_id=rid(), case_id=case_id, assignee_id=partner_id, assignee_kind=ev.ASSIGNEE_KIND_PARTNER),
                metadata=admin))
            await asyncio.sleep(1.0)
            assert not assign.done()  # waits for the leaving to commit
    finally:
        await conn.close()
    err = await error_of(assign)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "has left" in field_violations(err)["assignee_id"]


async def test_a_partner_lists_the_cases_assigned_to_it_in_every_community(casework, community_id) -> None:
    admin = casework.auth(Role.TOWN_ADMIN)
    other_community = f"c-{uuid.uuid4().hex[:8]}"
    p, q = (f"p-{uuid.uuid4().hex[:8]}" for _ in range(2))
    conn = await asyncpg.connect(casework.dsn)
    await conn.executemany("INSERT INTO known_partners (partner_id, name) VALUES ($1, $2)", [(p, "P"), (q, "Q")])
    await conn.close()
    mine = []
    for community, partner in ((community_id, p), (other_community, p), (community_id, q), (community_id, "")):
        case_id = await casework.open_case(community)
        if partner:
            await casework.stub.RespondToCase(api.RespondToCaseRequest(request_id=rid(), case_id=case_id), metadata=admin)
            await casework.stub.TriageCase(api.TriageCaseRequest(request_id=rid(), case_id=case_id,
                                                                 track=ev.TRACK_SOLVE_SOON), metadata=admin)
            await casework.stub.AssignCase(api.AssignCaseRequest(request_id=rid(), case_id=case_id, assignee_id=partner,
                                                                 assignee_kind=ev.ASSIGNEE_KIND_PARTNER), metadata=admin)
        if partner == p:
            mine.append(case_id)
    staff = casework.auth(Role.PARTNER_STAFF, partner=p)

    async def listed(md, **kw) -> list[str]:
        return [k.case_id for k in (await casework.stub.ListCases(api.ListCasesRequest(**kw), metadata=md)).cases]

    assert await listed(staff) == mine[::-1]  # theirs, newest first, every community
    assert await listed(staff, partner_id=p, community_id=other_community) == [mine[1]]
    assert await listed(admin, partner_id=p) == mine[::-1]
    assert await listed(casework.auth(Role.COMMUNITY_CADRE, community_id), community_id=community_id, partner_id=p) == \
        [mine[0]]
    assert len(await listed(admin, community_id=community_id)) == 3
    denied = [casework.stub.ListCases(api.ListCasesRequest(partner_id=q), metadata=staff),
              casework.stub.ListCases(api.ListCasesRequest(community_id=community_id),
                                      metadata=casework.auth(Role.PARTNER_STAFF))]  # a token with no partner
    for call in denied:
        assert (await error_of(call)).code() == grpc.StatusCode.PERMISSION_DENIED
    err = await error_of(casework.stub.ListCases(api.ListCasesRequest(partner_id=p),
                                                 metadata=casework.auth(Role.COMMUNITY_CADRE, community_id)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "community_id" in field_violations(err)


async def test_a_second_report_links_as_a_contact(casework, community_id) -> None:
    admin = casework.auth(Role.TOWN_ADMIN)
    first, second = await casework.open_case(community_id), await casework.open_case(community_id)
    linked = await casework.stub.LinkCase(api.LinkCaseRequest(request_id=rid(), case_id=second, primary_case_id=first),
                                          metadata=admin)
    assert linked.case.case_id == first and linked.case.contacts == 2
    dup = await casework.stub.GetCase(api.GetCaseRequest(case_id=second), metadata=admin)
    assert dup.case.status == api.CASE_STATUS_LINKED


async def test_one_household_one_vote(casework, community_id) -> None:
    cadre = casework.auth(Role.COMMUNITY_CADRE, community_id)
    households = [f"h-{i}" for i in range(4)]
    conn = await asyncpg.connect(casework.dsn)
    await conn.executemany("INSERT INTO known_households VALUES ($1, $2)", [(h, community_id) for h in households])
    await conn.close()
    d = await casework.stub.OpenDeliberation(api.OpenDeliberationRequest(
        request_id=rid(), community_id=community_id, topic="停车改造方案"), metadata=cadre)
    assert d.households_eligible == 4
    for h, choice in zip(households[:3], [ev.VOTE_CHOICE_FOR, ev.VOTE_CHOICE_FOR, ev.VOTE_CHOICE_AGAINST]):
        await casework.stub.CastVote(api.CastVoteRequest(request_id=rid(), deliberation_id=d.deliberation_id,
                                                         household_id=h, choice=choice), metadata=cadre)
    again = await error_of(casework.stub.CastVote(api.CastVoteRequest(
        request_id=rid(), deliberation_id=d.deliberation_id, household_id="h-0", choice=ev.VOTE_CHOICE_AGAINST),
        metadata=cadre))
    assert again.code() == grpc.StatusCode.ALREADY_EXISTS
    stranger = await error_of(casework.stub.CastVote(api.CastVoteRequest(
        request_id=rid(), deliberation_id=d.deliberation_id, household_id="h-99", choice=ev.VOTE_CHOICE_FOR),
        metadata=cadre))
    assert stranger.code() == grpc.StatusCode.INVALID_ARGUMENT
    decided = await casework.stub.DecideDeliberation(api.DecideDeliberationRequest(
        request_id=rid(), deliberation_id=d.deliberation_id, decision="通过"), metadata=cadre)
    assert (decided.votes_for, decided.votes_against, decided.households_eligible) == (2, 1, 4)
    closed = await error_of(casework.stub.CastVote(api.CastVoteRequest(
        request_id=rid(), deliberation_id=d.deliberation_id, household_id="h-3", choice=ev.VOTE_CHOICE_FOR),
        metadata=cadre))
    assert closed.code() == grpc.StatusCode.FAILED_PRECONDITION
    appraisal = api.RecordAppraisalRequest(request_id=rid(), community_id=community_id, period="2026H2",
                                           subject="committee", representative_id="rep-1", score=92)
    await casework.stub.RecordAppraisal(appraisal, metadata=cadre)
    appraisal.request_id = rid()
    assert (await error_of(casework.stub.RecordAppraisal(appraisal, metadata=cadre))).code() == \
        grpc.StatusCode.ALREADY_EXISTS
    # One name for each half year: the same appraisal under another spelling, or for a half year
    # still to come, is refused naming the period.
    for period in ("2026-H2", "2099H1"):
        appraisal.request_id, appraisal.period = rid(), period
        bad = await error_of(casework.stub.RecordAppraisal(appraisal, metadata=cadre))
        assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and "period" in field_violations(bad), period


async def test_a_promise_breaks_on_time_with_casework_down_across_the_due_time(
        casework, community_id, kafka_bootstrap, tmp_path: Path) -> None:
    """An emergency whose on-site promise is due in 3 s: the worker is killed before the due
    time and started after it; PromiseBroken is recorded within 5 s of its return."""
    casework.app.policy = PromisePolicy(on_site_minutes_emergency=0.05)
    case_id = await casework.open_case(community_id, urgency=t.URGENCY_EMERGENCY, channel=t.CHANNEL_FORM)
    env = {"DATABASE_URL": casework.dsn, "KAFKA_BOOTSTRAP": kafka_bootstrap, "METRICS_PORT": str(free_port()),
           "CASEWORK_SOURCE_TOPICS": await new_topic(kafka_bootstrap),
           "CASEWORK_CONSUMER_GROUP": f"test-{uuid.uuid4().hex[:8]}"}
    log = tmp_path / "worker.log"

    async def broken() -> list:
        conn = await asyncpg.connect(casework.dsn)
        try:
            return await conn.fetch("SELECT payload FROM events WHERE stream_id = $1 AND event_type = $2",
                                    f"case-{case_id}", "ganshou.casework.v1.PromiseBroken")
        finally:
            await conn.close()

    worker = spawn_module("ganshou_casework", env, log, "worker")
    await asyncio.sleep(1.0)
    kill(worker, signal.SIGKILL)
    await asyncio.sleep(4.0)  # the due time passes while casework is down
    assert await broken() == []
    worker = spawn_module("ganshou_casework", env, log, "worker")
    started = asyncio.get_running_loop().time()
    try:
        async with asyncio.timeout(5.0):
            while not await broken():
                await asyncio.sleep(0.1)
        print(f"\npromise broken {asyncio.get_running_loop().time() - started:.2f}s after the worker returned")
    finally:
        kill(worker, signal.SIGTERM)
    (row,) = await broken()
    e = ev.PromiseBroken.FromString(row["payload"])
    assert e.kind == ev.PROMISE_KIND_ON_SITE and e.detected_at.ToDatetime() > e.due_at.ToDatetime()
    got = await casework.stub.ListCases(api.ListCasesRequest(community_id=community_id, overdue_only=True),
                                        metadata=casework.auth(Role.TOWN_ADMIN))
    assert [c.case_id for c in got.cases] == [case_id]
