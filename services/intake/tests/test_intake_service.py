"""Intake end to end: the real gRPC server, PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from ganshou.common.v1 import types_pb2 as t
from ganshou.intake.v1 import events_pb2 as ev
from ganshou.intake.v1 import intake_service_pb2 as api
from ganshou_common.grpc_scaffold.auth import Role
from ganshou_common.grpc_scaffold.errors import field_violations
from ganshou_common.testing.kafka import read_topic
from ganshou_intake.app.bulk_import import CHUNK

pytestmark = pytest.mark.integration

NAMES = ["王小明", "李秀英"]
PHONES = ["13800138000", "13912345678"]


_people = itertools.count(1)
IDS: list[str] = []  # every ID number handed out here: one person each (intake refuses one twice)


def id_number() -> str:
    n = next(_people)
    body = f"310115{1950 + n // 1000 % 50}0101{n % 1000:03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    IDS.append(body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights)) % 11])
    return IDS[-1]


def rid() -> str:
    return uuid.uuid4().hex


def ts(dt: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(dt)
    return out


def household_request(community_id: str, **over) -> api.RegisterHouseholdRequest:
    req = api.RegisterHouseholdRequest(
        request_id=rid(), community_id=community_id, address="张江镇 科苑路 88弄 3号 502室",
        segments=[t.SEGMENT_LOCAL], care_groups=[t.CARE_GROUP_HARDSHIP],
        residents=[api.ResidentInput(name=NAMES[i], phone=PHONES[i], id_number=id_number(), segment=t.SEGMENT_LOCAL)
                   for i in range(2)],
    )
    for k, v in over.items():
        if k == "residents":
            del req.residents[:]
            req.residents.extend(v)
        else:
            setattr(req, k, v)
    return req


async def setup_community(intake, community_id: str) -> None:
    await intake.stub.RegisterCommunity(api.RegisterCommunityRequest(
        request_id=rid(), community_id=community_id, name="科苑居委", kind=ev.COMMUNITY_KIND_RESIDENTIAL),
        metadata=intake.admin())


async def error_of(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value


async def test_a_cadres_day_from_household_to_demands(intake, community_id) -> None:
    await setup_community(intake, community_id)
    cadre = intake.cadre(community_id)
    h = await intake.stub.RegisterHousehold(household_request(community_id), metadata=cadre)
    other = await intake.stub.RegisterHousehold(household_request(community_id, residents=[]), metadata=cadre)
    assert len(h.resident_ids) == 2

    now = datetime.now(UTC)
    campaign = await intake.stub.OpenVisitCampaign(api.OpenVisitCampaignRequest(
        request_id=rid(), community_id=community_id, title="走千家 听万言 2026 秋",
        starts_at=ts(now - timedelta(days=1)), ends_at=ts(now + timedelta(days=30))), metadata=cadre)
    assert campaign.households_due == 2

    visit = await intake.stub.RecordVisit(api.RecordVisitRequest(
        request_id=rid(), campaign_id=campaign.campaign_id, household_id=h.household_id,
        outcome=ev.VISIT_OUTCOME_MET, notes="老人独居，腿脚不便",
        demands=[api.DemandHeard(category="repair", description="楼道灯坏了", urgency=t.URGENCY_NORMAL,
                                 resident_id=h.resident_ids[0])]), metadata=cadre)
    assert len(visit.demand_ids) == 1
    await intake.stub.RecordVisit(api.RecordVisitRequest(
        request_id=rid(), campaign_id=campaign.campaign_id, household_id=other.household_id,
        outcome=ev.VISIT_OUTCOME_NOT_HOME), metadata=cadre)

    hotline = intake.auth(Role.HOTLINE_OPERATOR, subject="operator-7")
    call = await intake.stub.LogHotlineCall(api.LogHotlineCallRequest(
        request_id=rid(), community_id=community_id, kind=ev.CALL_KIND_EMERGENCY, household_id=h.household_id,
        caller_phone="13800138000", category="medical", summary="老人突发疾病，需送医"), metadata=hotline)
    assert call.demand_id
    inquiry = await intake.stub.LogHotlineCall(api.LogHotlineCallRequest(
        request_id=rid(), community_id=community_id, kind=ev.CALL_KIND_INQUIRY, summary="咨询社保办理时间"),
        metadata=hotline)
    assert not inquiry.demand_id
    # A call logged as received tomorrow is refused, naming the field; within the clock leeway it is taken.
    tomorrow = api.LogHotlineCallRequest(request_id=rid(), community_id=community_id, kind=ev.CALL_KIND_DEMAND,
                                         category="water", summary="漏水",
                                         received_at=ts(datetime.now(UTC) + timedelta(days=1)))
    err = await error_of(intake.stub.LogHotlineCall(tomorrow, metadata=hotline))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "received_at" in field_violations(err)
    skewed = await intake.stub.LogHotlineCall(api.LogHotlineCallRequest(
        request_id=rid(), community_id=community_id, kind=ev.CALL_KIND_INQUIRY, summary="咨询",
        received_at=ts(datetime.now(UTC) + timedelta(minutes=2))), metadata=hotline)
    assert skewed.call_id
    # A call is logged within 7 days of it: one of year 1 or 8 days ago is refused; one 6 days ago is taken.
    for when in (datetime(1, 1, 1, tzinfo=UTC), datetime.now(UTC) - timedelta(days=8)):
        err = await error_of(intake.stub.LogHotlineCall(api.LogHotlineCallRequest(
            request_id=rid(), community_id=community_id, kind=ev.CALL_KIND_DEMAND, category="water", summary="漏水",
            received_at=ts(when)), metadata=hotline))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "received_at" in field_violations(err)
    late = await intake.stub.LogHotlineCall(api.LogHotlineCallRequest(
        request_id=rid(), community_id=community_id, kind=ev.CALL_KIND_INQUIRY, summary="咨询",
        received_at=ts(datetime.now(UTC) - timedelta(days=6))), metadata=hotline)
    assert late.call_id
    form = await intake.stub.RaiseDemand(api.RaiseDemandRequest(
        request_id=rid(), community_id=community_id, channel=t.CHANNEL_FORM, urgency=t.URGENCY_NORMAL,
        category="parking", description="小区停车难"), metadata=cadre)

    demands = await intake.stub.ListDemands(api.ListDemandsRequest(community_id=community_id), metadata=cadre)
    assert {d.demand_id for d in demands.demands} == {visit.demand_ids[0], call.demand_id, form.demand_id}
    emergency = next(d for d in demands.demands if d.demand_id == call.demand_id)
    assert (emergency.channel, emergency.urgency) == (t.CHANNEL_HOTLINE, t.URGENCY_EMERGENCY)

    got = await intake.stub.GetHousehold(api.GetHouseholdRequest(household_id=h.household_id, purpose="回访"),
                                         metadata=cadre)
    assert got.household.address == "张江镇 科苑路 88弄 3号 502室"
    assert sorted(r.name for r in got.household.residents) == sorted(NAMES)

    conn = await asyncpg.connect(intake.dsn)
    audited = await conn.fetch("SELECT actor, purpose FROM personal_data_access")
    await conn.close()
    assert len(audited) == 3 and {(a["actor"], a["purpose"]) for a in audited} == {("cadre-1", "回访")}


async def test_lists_paginate(intake, community_id) -> None:
    await setup_community(intake, community_id)
    ids = {(await intake.stub.RegisterHousehold(household_request(community_id, residents=[]),
                                                metadata=intake.admin())).household_id for _ in range(7)}
    seen, token = [], ""
    while True:
        page = await intake.stub.ListHouseholds(api.ListHouseholdsRequest(community_id=community_id, page_size=3,
                                                                          page_token=token), metadata=intake.admin())
        seen += [h.household_id for h in page.households]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(ids)
    err = await error_of(intake.stub.ListHouseholds(api.ListHouseholdsRequest(community_id=community_id,
                                                                              page_token="garbage"), metadata=intake.admin()))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in field_violations(err)


async def test_a_list_of_a_community_never_registered_is_not_found(intake, community_id) -> None:
    typo = community_id + "x"
    for listing in (intake.stub.ListHouseholds(api.ListHouseholdsRequest(community_id=typo), metadata=intake.admin()),
                    intake.stub.ListDemands(api.ListDemandsRequest(community_id=typo), metadata=intake.admin())):
        err = await error_of(listing)
        assert err.code() == grpc.StatusCode.NOT_FOUND and "community_id" in err.details()
    await setup_community(intake, community_id)  # registered, nothing in it yet: an empty page
    assert not (await intake.stub.ListHouseholds(api.ListHouseholdsRequest(community_id=community_id),
                                                 metadata=intake.admin())).households
    assert not (await intake.stub.ListDemands(api.ListDemandsRequest(community_id=community_id),
                                              metadata=intake.admin())).demands


async def test_communities_are_listed_by_id_and_a_cadre_sees_their_own(intake, community_id) -> None:
    ours = [f"{community_id}-{n}" for n in range(3)]
    for n, c in enumerate(ours):
        await intake.stub.RegisterCommunity(api.RegisterCommunityRequest(
            request_id=uuid.uuid4().hex, community_id=c, name=f"社区{n}", kind=ev.COMMUNITY_KIND_VILLAGE),
            metadata=intake.admin())

    async def listed(md, size: int = 0) -> list[api.Community]:
        found, token = [], ""
        while True:
            page = await intake.stub.ListCommunities(api.ListCommunitiesRequest(page_size=size, page_token=token),
                                                     metadata=md)
            found += page.communities
            if not (token := page.next_page_token):
                return found

    everyone = await listed(intake.admin(), size=2)  # by id, page after page
    assert [c.community_id for c in everyone] == sorted(c.community_id for c in everyone)
    got = {c.community_id: c for c in everyone}
    assert set(ours) <= set(got) and got[ours[1]].name == "社区1" and got[ours[1]].kind == ev.COMMUNITY_KIND_VILLAGE
    assert got[ours[1]].registered_at.seconds > 0
    for role in (Role.AUDITOR, Role.HOTLINE_OPERATOR, Role.PARTNER_STAFF):
        assert {c.community_id for c in await listed(intake.auth(role))} == set(got)
    assert [c.community_id for c in await listed(intake.cadre(ours[2], ours[0], "never-registered"))] == [ours[0], ours[2]]
    err = await error_of(intake.stub.ListCommunities(api.ListCommunitiesRequest(page_token="garbage"),
                                                     metadata=intake.admin()))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in field_violations(err)


async def test_a_retried_request_returns_the_first_answer(intake, community_id) -> None:
    await setup_community(intake, community_id)
    req = household_request(community_id)
    first = await intake.stub.RegisterHousehold(req, metadata=intake.admin())
    again = await intake.stub.RegisterHousehold(req, metadata=intake.admin())
    assert first == again
    conn = await asyncpg.connect(intake.dsn)
    n = await conn.fetchval("SELECT count(*) FROM events WHERE event_type = 'ganshou.intake.v1.HouseholdRegistered'")
    await conn.close()
    assert n == 1


async def test_bad_fields_are_named(intake, community_id) -> None:
    await setup_community(intake, community_id)
    bad = household_request(community_id, address="")
    bad.residents[0].phone = "12345"
    bad.residents[1].id_number = "310115198001011234"  # wrong check character
    bad.residents[1].segment = t.SEGMENT_UNSPECIFIED
    err = await error_of(intake.stub.RegisterHousehold(bad, metadata=intake.admin()))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(err)) == {"address", "residents[0].phone", "residents[1].id_number", "residents[1].segment"}

    err = await error_of(intake.stub.RegisterHousehold(household_request("c-nowhere"), metadata=intake.admin()))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "community_id" in field_violations(err)
    err = await error_of(intake.stub.RegisterHousehold(household_request(community_id, request_id=""),
                                                       metadata=intake.admin()))
    assert "request_id" in field_violations(err)


async def test_visits_only_to_due_households_in_an_open_campaign(intake, community_id) -> None:
    await setup_community(intake, community_id)
    a = await intake.stub.RegisterHousehold(household_request(community_id, residents=[]), metadata=intake.admin())
    b = await intake.stub.RegisterHousehold(household_request(community_id, residents=[]), metadata=intake.admin())
    now = datetime.now(UTC)
    c = await intake.stub.OpenVisitCampaign(api.OpenVisitCampaignRequest(
        request_id=rid(), community_id=community_id, title="only a", household_ids=[a.household_id],
        starts_at=ts(now - timedelta(days=1)), ends_at=ts(now + timedelta(days=1))), metadata=intake.admin())
    # A campaign is a season's work (at most 366 days), of this century (a year-1 start once
    # let a visit of year 1 be stored as -infinity and stop the relay).
    for starts, ends, field in ((now - timedelta(days=1), now + timedelta(days=400), "ends_at"),
                                (datetime(1, 1, 1, tzinfo=UTC), now, "starts_at")):
        err = await error_of(intake.stub.OpenVisitCampaign(api.OpenVisitCampaignRequest(
            request_id=rid(), community_id=community_id, title="too long", starts_at=ts(starts), ends_at=ts(ends)),
            metadata=intake.admin()))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and field in field_violations(err)
    err = await error_of(intake.stub.RecordVisit(api.RecordVisitRequest(
        request_id=rid(), campaign_id=c.campaign_id, household_id=b.household_id, outcome=ev.VISIT_OUTCOME_MET),
        metadata=intake.admin()))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "household_id" in field_violations(err)
    err = await error_of(intake.stub.RecordVisit(api.RecordVisitRequest(
        request_id=rid(), campaign_id=c.campaign_id, household_id=a.household_id, outcome=ev.VISIT_OUTCOME_MET,
        visited_at=ts(now - timedelta(days=5))), metadata=intake.admin()))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION  # before the campaign opened
    err = await error_of(intake.stub.RecordVisit(api.RecordVisitRequest(
        request_id=rid(), campaign_id=c.campaign_id, household_id=a.household_id, outcome=ev.VISIT_OUTCOME_MET,
        visited_at=ts(now + timedelta(hours=1))), metadata=intake.admin()))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "visited_at" in field_violations(err)  # not yet
    err = await error_of(intake.stub.RecordVisit(api.RecordVisitRequest(
        request_id=rid(), campaign_id=c.campaign_id, household_id=a.household_id,
        outcome=ev.VISIT_OUTCOME_NOT_HOME, demands=[api.DemandHeard(category="x", description="y",
                                                                    urgency=t.URGENCY_NORMAL)]),
        metadata=intake.admin()))
    assert "demands" in field_violations(err)


async def test_a_cadre_of_one_community_cannot_touch_another(intake, community_id) -> None:
    other = f"c-{uuid.uuid4().hex[:8]}"
    await setup_community(intake, community_id)
    await setup_community(intake, other)
    theirs = await intake.stub.RegisterHousehold(household_request(other), metadata=intake.admin())
    mine = intake.cadre(community_id)
    for call in (
        intake.stub.RegisterHousehold(household_request(other), metadata=mine),
        intake.stub.GetHousehold(api.GetHouseholdRequest(household_id=theirs.household_id, purpose="x"), metadata=mine),
        intake.stub.GetResident(api.GetResidentRequest(resident_id=theirs.resident_ids[0], purpose="x"), metadata=mine),
        intake.stub.ListHouseholds(api.ListHouseholdsRequest(community_id=other), metadata=mine),
        intake.stub.ListDemands(api.ListDemandsRequest(community_id=other), metadata=mine),
        intake.stub.RegisterResident(api.RegisterResidentRequest(
            request_id=rid(), household_id=theirs.household_id,
            resident=api.ResidentInput(name="x", segment=t.SEGMENT_LOCAL)), metadata=mine),
        intake.stub.EraseResident(api.EraseResidentRequest(request_id=rid(), resident_id=theirs.resident_ids[0],
                                                           reason="x"), metadata=mine),
        intake.stub.RegisterCommunity(api.RegisterCommunityRequest(request_id=rid(), community_id="c-new", name="n",
                                                                   kind=ev.COMMUNITY_KIND_VILLAGE), metadata=mine),
    ):
        assert (await error_of(call)).code() == grpc.StatusCode.PERMISSION_DENIED
    auditor = intake.auth(Role.AUDITOR)
    assert (await error_of(intake.stub.RegisterHousehold(household_request(other), metadata=auditor))).code() == \
        grpc.StatusCode.PERMISSION_DENIED


async def test_events_reach_kafka_in_order_without_plaintext_personal_data(intake, community_id, kafka_bootstrap) -> None:
    await setup_community(intake, community_id)
    h = await intake.stub.RegisterHousehold(household_request(community_id), metadata=intake.admin())
    await intake.stub.LogHotlineCall(api.LogHotlineCallRequest(
        request_id=rid(), community_id=community_id, kind=ev.CALL_KIND_DEMAND, household_id=h.household_id,
        caller_phone=PHONES[1], category="water", summary="停水"), metadata=intake.admin())
    conn = await asyncpg.connect(intake.dsn)
    stored = await conn.fetch("SELECT stream_id, version, payload FROM events")
    async with asyncio.timeout(30):
        while await conn.fetchval("SELECT count(*) FROM outbox"):
            await asyncio.sleep(0.1)
    await conn.close()

    ours = {r["stream_id"] for r in stored}
    published = [m for m in await read_topic(kafka_bootstrap, intake.topic) if m.stream_id in ours]
    assert {(m.stream_id, m.stream_version) for m in published} == {(r["stream_id"], r["version"]) for r in stored}
    for s in ours:
        versions = [m.stream_version for m in published if m.stream_id == s]
        assert versions == sorted(versions)
    assert all(m.source == "intake" and m.community_id == community_id for m in published)

    secrets = [x.encode() for x in NAMES + PHONES + IDS + ["科苑路 88弄"]]
    blobs = [bytes(r["payload"]) for r in stored] + [m.SerializeToString() for m in published]
    leaks = [s.decode() for s in secrets for b in blobs if s in b]
    assert not leaks, f"plaintext personal data found: {leaks}"


async def test_erasure_makes_a_person_unreadable_and_keeps_everything_else(intake, community_id) -> None:
    await setup_community(intake, community_id)
    h = await intake.stub.RegisterHousehold(household_request(community_id), metadata=intake.admin())
    victim = h.resident_ids[0]
    await intake.stub.EraseResident(api.EraseResidentRequest(request_id=rid(), resident_id=victim, reason="本人申请"),
                                    metadata=intake.admin())
    got = (await intake.stub.GetResident(api.GetResidentRequest(resident_id=victim, purpose="核查"),
                                         metadata=intake.admin())).resident
    assert got.erased and got.name == got.phone == got.id_number == "[erased]"
    assert got.segment == t.SEGMENT_LOCAL and got.household_id == h.household_id
    kept = (await intake.stub.GetResident(api.GetResidentRequest(resident_id=h.resident_ids[1], purpose="核查"),
                                          metadata=intake.admin())).resident
    assert not kept.erased and kept.name == NAMES[1]
    listed = await intake.stub.ListHouseholds(api.ListHouseholdsRequest(community_id=community_id), metadata=intake.admin())
    assert listed.households[0].residents == 2
    err = await error_of(intake.stub.EraseResident(api.EraseResidentRequest(request_id=rid(), resident_id=victim,
                                                                            reason="again"), metadata=intake.admin()))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    conn = await asyncpg.connect(intake.dsn)
    assert not await conn.fetchval("SELECT count(*) FROM subject_keys WHERE subject_id = $1", f"resident-{victim}")
    assert await conn.fetchval("SELECT count(*) FROM events WHERE stream_id = $1", f"resident-{victim}") == 2
    await conn.close()


async def test_erasing_the_last_resident_erases_the_households_address_and_the_calls_naming_them(
        intake, community_id) -> None:
    from ganshou_intake.adapters import call_people

    await setup_community(intake, community_id)
    h = await intake.stub.RegisterHousehold(household_request(community_id), metadata=intake.admin())
    first, second = h.resident_ids

    async def call(**named) -> str:
        return (await intake.stub.LogHotlineCall(api.LogHotlineCallRequest(
            request_id=rid(), community_id=community_id, kind=ev.CALL_KIND_INQUIRY, summary="问路",
            **named), metadata=intake.admin())).call_id

    by_first = await call(resident_id=first, household_id=h.household_id, caller_phone=PHONES[0])
    by_household = await call(household_id=h.household_id, caller_phone="13700137000")
    by_second = await call(resident_id=second, caller_phone=PHONES[1])
    await call(resident_id=first)  # no phone: nothing sealed, nothing to erase
    conn = await asyncpg.connect(intake.dsn)

    async def keys(*subjects: str) -> set[str]:
        return {r["subject_id"] for r in await conn.fetch(
            "SELECT subject_id FROM subject_keys WHERE subject_id = ANY($1)", list(subjects))}

    async def address() -> str:
        return (await intake.stub.GetHousehold(api.GetHouseholdRequest(household_id=h.household_id, purpose="核查"),
                                               metadata=intake.admin())).household.address

    calls = [f"call-{c}" for c in (by_first, by_household, by_second)]
    assert await keys(*calls) == set(calls)
    done = await intake.stub.EraseResident(api.EraseResidentRequest(request_id=rid(), resident_id=first,
                                                                    reason="本人申请"), metadata=intake.admin())
    assert (done.household_erased, done.calls_erased) == (False, 1)
    assert await keys(*calls) == {f"call-{by_household}", f"call-{by_second}"}
    assert await address() == "张江镇 科苑路 88弄 3号 502室"  # its other resident still lives there

    done = await intake.stub.EraseResident(api.EraseResidentRequest(request_id=rid(), resident_id=second,
                                                                    reason="本人申请"), metadata=intake.admin())
    assert (done.household_erased, done.calls_erased) == (True, 2)
    assert await keys(*calls, f"household-{h.household_id}") == set()
    assert await address() == "[erased]"

    # Before call_people (0104): calls are found from their events at the next start, and an
    # erasure made then (the resident's key alone) is completed as it is now.
    earlier = await intake.stub.RegisterHousehold(household_request(community_id, residents=[api.ResidentInput(
        name=NAMES[0], phone=PHONES[0], id_number=id_number(), segment=t.SEGMENT_LOCAL)]), metadata=intake.admin())
    alone = earlier.resident_ids[0]
    its_call = await call(resident_id=alone, caller_phone=PHONES[0])
    await conn.execute("UPDATE residents SET erased = true WHERE resident_id = $1", alone)
    await conn.execute("DELETE FROM subject_keys WHERE subject_id = $1", f"resident-{alone}")
    await conn.execute("DELETE FROM call_people WHERE call_id = ANY($1)", [by_first, by_household, by_second, its_call])
    await conn.execute("UPDATE call_people_backfill SET pending = true")
    pool = await asyncpg.create_pool(intake.dsn, min_size=1, max_size=1)
    try:
        assert await call_people.backfill(pool, intake.master) >= 4
        assert await call_people.backfill(pool, intake.master) == 0  # once
    finally:
        await pool.close()
    assert set(await call_people.naming(conn, first, h.household_id)) == {by_first, by_household}
    assert await keys(f"call-{its_call}", f"household-{earlier.household_id}") == set()
    await conn.close()


async def test_the_last_two_residents_erased_at_once_erase_their_household(intake, community_id) -> None:
    # Each erasure in a transaction of its own (no group commit): the second to check whether
    # anyone is left waits for the first to commit, and sees it.
    from ganshou_intake.adapters import read_models as rm

    await setup_community(intake, community_id)
    h = await intake.stub.RegisterHousehold(household_request(community_id), metadata=intake.admin())
    first, second = [await asyncpg.connect(intake.dsn) for _ in range(2)]
    try:
        one, two = first.transaction(), second.transaction()
        await one.start()
        await two.start()
        await rm.mark_erased(first, h.resident_ids[0])
        await rm.mark_erased(second, h.resident_ids[1])
        assert await rm.others_unerased(first, h.household_id, h.resident_ids[0])  # the other not yet
        checked = asyncio.create_task(rm.others_unerased(second, h.household_id, h.resident_ids[1]))
        await asyncio.sleep(0.3)
        assert not checked.done()  # waits for the household's lock
        await one.commit()
        assert not await checked  # anyone left? no: this one erases the household
        await two.commit()
    finally:
        await first.close()
        await second.close()


async def test_import_keeps_good_rows_reports_bad_and_is_idempotent(intake, community_id) -> None:
    await setup_community(intake, community_id)
    request_id = rid()
    rows = []
    for n in range(1, 13):
        req = household_request(community_id, request_id="")
        if n == 4:
            req.address = ""
        if n == 9:
            req.community_id = "c-missing"
        rows.append(api.ImportHouseholdsRequest(request_id=request_id, row_number=n, household=req))

    async def send():
        for r in rows:
            yield r

    result = await intake.stub.ImportHouseholds(send(), metadata=intake.admin())
    assert result.households_imported == 10 and result.residents_imported == 20
    assert sorted((r.row_number, r.field) for r in result.rejected) == [(4, "address"), (9, "community_id")]
    again = await intake.stub.ImportHouseholds(send(), metadata=intake.admin())
    assert again.household_ids == result.household_ids
    conn = await asyncpg.connect(intake.dsn)
    assert await conn.fetchval("SELECT count(*) FROM households") == 10
    await conn.close()


async def test_an_import_of_several_chunks_in_flight_keeps_the_rows_order_and_is_idempotent(intake, community_id) -> None:
    # 2,150 rows are three chunks, written concurrently: the ids still come back in the
    # rows' order, bad rows in any chunk are reported, and a retry adds nothing, whether it
    # sends a row a message or rows in bulk.
    assert 2 * CHUNK < 2150 <= 3 * CHUNK
    await setup_community(intake, community_id)
    request_id, bad = rid(), {7, 1640, 2149}
    rows = []
    for n in range(1, 2151):
        req = household_request(community_id, request_id="", residents=[])
        req.address = "" if n in bad else f"科苑路{n}号"
        rows.append(api.ImportHouseholdsRequest(request_id=request_id, row_number=n, household=req))

    async def send():
        for r in rows:
            yield r

    async def send_in_bulk():  # the same rows, by the hundred in a message (the first message also one of its own)
        yield rows[0]
        for i in range(1, len(rows), 100):
            yield api.ImportHouseholdsRequest(request_id=request_id, rows=[
                api.ImportRow(row_number=r.row_number, household=r.household) for r in rows[i:i + 100]])

    result = await intake.stub.ImportHouseholds(send(), metadata=intake.admin())
    assert result.households_imported == 2147
    assert sorted(r.row_number for r in result.rejected) == sorted(bad)
    again = await intake.stub.ImportHouseholds(send(), metadata=intake.admin())
    assert again.household_ids == result.household_ids
    in_bulk = await intake.stub.ImportHouseholds(send_in_bulk(), metadata=intake.admin())
    assert in_bulk.household_ids == result.household_ids  # the same import: nothing added
    assert sorted((r.row_number, r.field) for r in in_bulk.rejected) == \
        sorted((r.row_number, r.field) for r in result.rejected)
    conn = await asyncpg.connect(intake.dsn)
    assert await conn.fetchval("SELECT count(*) FROM households") == 2147
    first = await intake.stub.GetHousehold(api.GetHouseholdRequest(household_id=result.household_ids[0],
                                                                   purpose="import check"), metadata=intake.admin())
    last = await intake.stub.GetHousehold(api.GetHouseholdRequest(household_id=result.household_ids[-1],
                                                                  purpose="import check"), metadata=intake.admin())
    assert (first.household.address, last.household.address) == ("科苑路1号", "科苑路2150号")
    await conn.close()


async def test_one_person_is_one_resident_across_households_until_erased(intake, community_id) -> None:
    await setup_community(intake, community_id)
    admin = intake.admin()
    first_req = household_request(community_id)
    first = await intake.stub.RegisterHousehold(first_req, metadata=admin)
    number = first_req.residents[0].id_number
    # The same person in another household (the number in any case) is refused, naming the field and the record.
    again = household_request(community_id)
    again.residents[1].id_number = number.lower()
    err = await error_of(intake.stub.RegisterHousehold(again, metadata=admin))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "residents[1].id_number" in err.details() and first.resident_ids[0] in err.details()
    other = await intake.stub.RegisterHousehold(household_request(community_id, residents=[]), metadata=admin)
    person = api.ResidentInput(name="张三", id_number=number, segment=t.SEGMENT_LOCAL)
    err = await error_of(intake.stub.RegisterResident(api.RegisterResidentRequest(
        request_id=rid(), household_id=other.household_id, resident=person), metadata=admin))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS and "resident.id_number" in err.details()
    # An import refuses a row naming them, and the second of two rows naming one new person; the rest are kept.
    twin = id_number()
    rows = [household_request(community_id, request_id="") for _ in range(4)]
    rows[0].residents[0].id_number = number
    rows[1].residents[1].id_number = twin
    rows[3].residents[0].id_number = twin

    request_id = rid()

    async def send():
        for n, row in enumerate(rows, start=1):
            yield api.ImportHouseholdsRequest(request_id=request_id, row_number=n, household=row)

    result = await intake.stub.ImportHouseholds(send(), metadata=admin)
    assert sorted((r.row_number, r.field) for r in result.rejected) == [(1, "residents[0].id_number"),
                                                                       (4, "residents[0].id_number")]
    assert result.households_imported == 2
    # The refused rows' other people were not kept: row 1's second person can be registered now.
    kept = await intake.stub.RegisterResident(api.RegisterResidentRequest(
        request_id=rid(), household_id=other.household_id,
        resident=api.ResidentInput(name="李四", id_number=rows[0].residents[1].id_number, segment=t.SEGMENT_LOCAL)),
        metadata=admin)
    assert kept.resident_id
    # Once the first record is erased, the person can be registered where they live now.
    await intake.stub.EraseResident(api.EraseResidentRequest(request_id=rid(), resident_id=first.resident_ids[0],
                                                             reason="搬家"), metadata=admin)
    moved = await intake.stub.RegisterResident(api.RegisterResidentRequest(
        request_id=rid(), household_id=other.household_id, resident=person), metadata=admin)
    assert moved.resident_id


async def test_residents_registered_before_the_claims_claim_their_numbers_once(intake, community_id) -> None:
    """An upgrade from before 0102: the residents then registered hold no claim until intake's
    next start claims them all (0103's marker), once."""
    from ganshou_common.pii import lookup_key
    from ganshou_intake.adapters import id_numbers

    await setup_community(intake, community_id)
    admin = intake.admin()
    old = household_request(community_id)
    await intake.stub.RegisterHousehold(old, metadata=admin)
    pool = await asyncpg.create_pool(intake.dsn, min_size=1, max_size=3)
    try:
        await pool.execute("DELETE FROM resident_id_numbers")
        await pool.execute("UPDATE id_number_backfill SET pending = true")
        key = await lookup_key(pool, intake.master, "id_number")
        made = await asyncio.gather(*(id_numbers.backfill(pool, intake.master, key) for _ in range(3)))
        assert sorted(made) == [0, 0, 2]  # replicas starting together: one claims, the others find it done
    finally:
        await pool.close()
    again = household_request(community_id)
    again.residents[0].id_number = old.residents[1].id_number
    err = await error_of(intake.stub.RegisterHousehold(again, metadata=admin))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
