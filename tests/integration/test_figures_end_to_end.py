"""Commands into intake, casework and partner-resource over gRPC → the right figures in
GetFigures, WatchFigures and /metrics; replays change nothing; a killed metrics worker
recovers every figure from its changelogs; a rebuild from the topics gives the same."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from aiokafka import AIOKafkaProducer
from google.protobuf.timestamp_pb2 import Timestamp

from ganshou.casework.v1 import casework_service_pb2 as capi
from ganshou.casework.v1 import events_pb2 as cev
from ganshou.common.v1 import types_pb2 as t
from ganshou.intake.v1 import events_pb2 as iev
from ganshou.intake.v1 import intake_service_pb2 as iapi
from ganshou.metrics.v1 import metrics_service_pb2 as mapi
from ganshou.partner_resource.v1 import events_pb2 as pev
from ganshou.partner_resource.v1 import partner_resource_service_pb2 as papi
from ganshou_common.grpc_scaffold.auth import Role
from ganshou_common.grpc_scaffold.errors import field_violations
from ganshou_common.testing.kafka import read_records

pytestmark = pytest.mark.integration


def rid() -> str:
    return uuid.uuid4().hex


def ts(dt: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(dt)
    return out


async def eventually(probe, timeout: float = 45.0, every: float = 0.3):
    """Retry `probe` (an async callable returning a truthy value, or raising) until it holds."""
    last = None
    async with asyncio.timeout(timeout):
        while True:
            try:
                result = await probe()
                if result:
                    return result
            except (AssertionError, grpc.aio.AioRpcError) as exc:
                last = exc
            await asyncio.sleep(every)
    raise AssertionError(last)


async def figures(system, community: str = "", name: str = "metrics") -> mapi.Figures:
    reply = await system.metrics(name).GetFigures(mapi.GetFiguresRequest(community_id=community),
                                                  metadata=system.auth())
    return reply.figures


async def load_small_town(system, c: str) -> dict:
    admin = system.auth()
    await system.intake.RegisterCommunity(iapi.RegisterCommunityRequest(
        request_id=rid(), community_id=c, name="张江 科苑", kind=iev.COMMUNITY_KIND_RESIDENTIAL), metadata=admin)
    households = []
    for n in range(3):
        h = await system.intake.RegisterHousehold(iapi.RegisterHouseholdRequest(
            request_id=rid(), community_id=c, address=f"科苑路 {n} 号", segments=[t.SEGMENT_LOCAL],
            residents=[iapi.ResidentInput(name=f"居民{n}", segment=t.SEGMENT_LOCAL)]), metadata=admin)
        households.append(h)
    now = datetime.now(UTC)
    camp = await system.intake.OpenVisitCampaign(iapi.OpenVisitCampaignRequest(
        request_id=rid(), community_id=c, title="走访", starts_at=ts(now - timedelta(days=1)),
        ends_at=ts(now + timedelta(days=1))), metadata=admin)
    for h, outcome in ((households[0], iev.VISIT_OUTCOME_MET), (households[1], iev.VISIT_OUTCOME_MET),
                       (households[2], iev.VISIT_OUTCOME_NOT_HOME), (households[0], iev.VISIT_OUTCOME_MET)):
        await system.intake.RecordVisit(iapi.RecordVisitRequest(
            request_id=rid(), campaign_id=camp.campaign_id, household_id=h.household_id, outcome=outcome),
            metadata=admin)
    calls = [await system.intake.LogHotlineCall(iapi.LogHotlineCallRequest(
        request_id=rid(), community_id=c, kind=kind, household_id=households[0].household_id, category="water",
        summary="停水"), metadata=admin) for kind in (iev.CALL_KIND_DEMAND, iev.CALL_KIND_EMERGENCY)]
    await system.intake.RaiseDemand(iapi.RaiseDemandRequest(
        request_id=rid(), community_id=c, channel=t.CHANNEL_FORM, urgency=t.URGENCY_NORMAL, category="parking",
        description="停车难"), metadata=admin)

    async def cases():
        listed = await system.casework.ListCases(capi.ListCasesRequest(community_id=c), metadata=admin)
        return listed.cases if len(listed.cases) == 3 else None

    by_demand = {k.demand_id: k.case_id for k in await eventually(cases)}
    first, emergency = by_demand[calls[0].demand_id], by_demand[calls[1].demand_id]
    cw = system.casework
    await cw.RespondToCase(capi.RespondToCaseRequest(request_id=rid(), case_id=first), metadata=admin)
    await cw.TriageCase(capi.TriageCaseRequest(request_id=rid(), case_id=first, track=cev.TRACK_SOLVE_NOW), metadata=admin)
    await cw.ResolveCase(capi.ResolveCaseRequest(request_id=rid(), case_id=first, summary="修好了"), metadata=admin)
    await cw.RateSatisfaction(capi.RateSatisfactionRequest(request_id=rid(), case_id=first, score=5), metadata=admin)
    await cw.RecordOnSiteArrival(capi.RecordOnSiteArrivalRequest(request_id=rid(), case_id=emergency), metadata=admin)
    await cw.TriageCase(capi.TriageCaseRequest(request_id=rid(), case_id=emergency, track=cev.TRACK_EXPLAIN),
                        metadata=admin)
    await cw.ExplainCase(capi.ExplainCaseRequest(request_id=rid(), case_id=emergency, explanation="政策"), metadata=admin)
    await cw.RateSatisfaction(capi.RateSatisfactionRequest(request_id=rid(), case_id=emergency, score=2), metadata=admin)

    p = await system.partners.RegisterPartner(papi.RegisterPartnerRequest(
        request_id=rid(), name="中医药大学", kind=pev.PARTNER_KIND_UNIVERSITY), metadata=admin)
    pairing = await eventually(lambda: system.partners.SignPairing(papi.SignPairingRequest(
        request_id=f"pair-{c}", partner_id=p.partner_id, community_id=c), metadata=admin))
    await system.partners.RecordAgreement(papi.RecordAgreementRequest(
        request_id=rid(), pairing_id=pairing.pairing_id, category=pev.AGREEMENT_CATEGORY_ASSISTANCE_RELIEF,
        title="帮困结对"), metadata=admin)
    offering = await system.partners.PublishOffering(papi.PublishOfferingRequest(
        request_id=rid(), partner_id=p.partner_id, category="clinic", title="义诊", capacity_per_period=100),
        metadata=admin)
    await system.partners.RecordDelivery(papi.RecordDeliveryRequest(
        request_id=rid(), offering_id=offering.offering_id, community_id=c, person_times=3), metadata=admin)
    prog = await system.partners.OpenAidProgramme(papi.OpenAidProgrammeRequest(
        request_id=rid(), kind=pev.AID_KIND_HARDSHIP, name="帮困"), metadata=admin)
    await eventually(lambda: system.partners.DisburseAid(papi.DisburseAidRequest(
        request_id=f"aid-{c}", programme_id=prog.programme_id, resident_id=households[0].resident_ids[0],
        amount=t.Money(fen=50_000)), metadata=admin))
    d = await eventually(lambda: system.casework.OpenDeliberation(capi.OpenDeliberationRequest(
        request_id=f"delib-{c}", community_id=c, topic="停车"), metadata=admin))
    for h in households[:2]:
        await system.casework.CastVote(capi.CastVoteRequest(request_id=rid(), deliberation_id=d.deliberation_id,
                                                            household_id=h.household_id, choice=cev.VOTE_CHOICE_FOR),
                                       metadata=admin)
    cadre = system.auth(Role.COMMUNITY_CADRE, c)
    org = await system.partners.EnrollOrganisation(papi.EnrollOrganisationRequest(
        request_id=rid(), name="党支部", kind=pev.ORGANISATION_KIND_RESIDENTIAL, community_id=c), metadata=cadre)
    for item in (pev.STANDARD_ITEM_SIGN, pev.STANDARD_ITEM_VENUE):
        await system.partners.RecordStandardItem(papi.RecordStandardItemRequest(
            request_id=rid(), organisation_id=org.organisation_id, item=item), metadata=cadre)
    await system.partners.ApplyForDemonstration(papi.ApplyForDemonstrationRequest(
        request_id=rid(), organisation_id=org.organisation_id), metadata=cadre)
    commitment = await system.partners.MakeCommitment(papi.MakeCommitmentRequest(
        request_id=rid(), member_id="m-1", kind="policy outreach", community_id=c), metadata=cadre)
    await system.partners.FulfilCommitment(papi.FulfilCommitmentRequest(
        request_id=rid(), commitment_id=commitment.commitment_id), metadata=cadre)
    await system.partners.RegisterPartnerMembers(papi.RegisterPartnerMembersRequest(
        request_id=rid(), partner_id=p.partner_id, community_id=c, members=40), metadata=admin)
    team = await system.partners.RegisterVolunteerTeam(papi.RegisterVolunteerTeamRequest(
        request_id=rid(), name="青年志愿队", community_id=c), metadata=cadre)
    vol = await system.partners.RegisterVolunteer(papi.RegisterVolunteerRequest(
        request_id=rid(), team_id=team.team_id, name="志愿者", segment=t.SEGMENT_WHITE_COLLAR), metadata=cadre)
    await system.partners.RecordVolunteerActivity(papi.RecordVolunteerActivityRequest(
        request_id=rid(), team_id=team.team_id, title="义卖",
        volunteers=[papi.VolunteerTime(volunteer_id=vol.volunteer_id, minutes=90)]), metadata=cadre)
    window = await system.partners.OpenServiceWindow(papi.OpenServiceWindowRequest(
        request_id=rid(), office=pev.SERVICE_OFFICE_PENSIONS, community_id=c, schedule="周六上午", weekends=True),
        metadata=cadre)
    await system.partners.RecordAfterHoursService(papi.RecordAfterHoursServiceRequest(
        request_id=rid(), window_id=window.window_id, date="2026-11-28", weekend_person_times=9), metadata=cadre)
    return {"households": 3, "organisations": 1, "standard_items_completed": 2, "demonstration_applications": 1,
            "commitments_made": 1, "commitments_fulfilled": 1, "partner_members_registered": 40, "volunteers": 1,
            "volunteer_activities": 1, "volunteer_minutes": 90, "after_hours_weekend_person_times": 9, "households_due": 3, "households_visited": 2, "visits": 4, "hotline_calls": 2,
            "emergency_calls": 1, "demands": 3, "issues_received": 3, "responded": 2, "resolved": 1, "explained": 1,
            "ratings": 2, "satisfaction_mean": 3.5, "emergencies": 1, "on_site_kept": 1, "service_person_times": 3,
            "aid_paid_fen": 50_000, "aid_distinct_persons": 1, "deliberation_households_voted": 2,
            "deliberation_households_eligible": 3, "units_with_pairing": 0, "active_pairings": 1}


def check(f: mapi.Figures, expected: dict) -> bool:
    got = {k: getattr(f, k) for k in expected}
    assert got == expected, f"figures not there yet: {got}"
    return True


async def test_figures_end_to_end(system) -> None:
    c = f"c-{uuid.uuid4().hex[:6]}"
    expected = await load_small_town(system, c)
    await eventually(lambda: _holds(system, c, expected))
    town = await figures(system)
    assert (town.member_units, town.units_with_pairing, town.pairing_signing_rate) == (1, 1, 1.0)
    community = await figures(system, c)
    assert abs(community.visit_coverage - 2 / 3) < 1e-9 and community.demands_by_channel == {"hotline": 2, "form": 1}

    # WatchFigures: the current figures at once, then an update when one changes.
    stream = system.metrics().WatchFigures(mapi.WatchFiguresRequest(community_id=c, min_interval_ms=100),
                                           metadata=system.auth())
    first = await asyncio.wait_for(stream.read(), 10)
    assert first.figures.demands == 3
    await system.intake.RaiseDemand(iapi.RaiseDemandRequest(
        request_id=rid(), community_id=c, channel=t.CHANNEL_ONLINE, urgency=t.URGENCY_NORMAL, category="noise",
        description="噪音"), metadata=system.auth())
    async with asyncio.timeout(20):
        while (update := await stream.read()).figures.demands != 4:
            pass
    stream.cancel()
    expected["demands"] = 4
    expected["issues_received"] = 4
    await eventually(lambda: _holds(system, c, expected))

    # /metrics: the same figures, clean for promtool.
    text = urllib.request.urlopen(f"http://127.0.0.1:{system.procs['metrics'].metrics_port}/metrics").read().decode()
    assert f'ganshou_households{{community="{c}"}} 3.0' in text
    assert f'ganshou_aid_paid_fen{{community="{c}"}} 50000.0' in text
    assert f'ganshou_volunteer_service_seconds{{community="{c}"}} 5400.0' in text
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    # A cadre sees only their own community.
    cadre = system.auth(Role.COMMUNITY_CADRE, "c-elsewhere")
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await system.metrics().GetFigures(mapi.GetFiguresRequest(community_id=c), metadata=cadre)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # An id no community could have is refused, naming the field (one not projected yet answers zeros).
    admin = system.auth(Role.TOWN_ADMIN)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await system.metrics().GetFigures(mapi.GetFiguresRequest(community_id="ZJ 01!", segment=42), metadata=admin)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(refused.value)) == {"community_id", "segment"}

    before = await figures(system, c)
    # Replaying every event already consumed changes no figure.
    producer = AIOKafkaProducer(bootstrap_servers=system.kafka)
    await producer.start()
    replayed = 0
    for topic in system.topics.values():
        for record in await read_records(system.kafka, topic):
            await producer.send(topic, record.value, key=record.key)
            replayed += 1
    await producer.stop()
    await asyncio.sleep(3)
    assert await figures(system, c) == before

    # A worker stopping (SIGTERM) ends its watchers' streams with UNAVAILABLE at once, so their
    # clients watch again elsewhere rather than wait out its 10 s grace on a stream that stood still.
    stream = system.metrics().WatchFigures(mapi.WatchFiguresRequest(community_id=c), metadata=system.auth())
    await asyncio.wait_for(stream.read(), 10)
    system.procs["metrics"].popen.send_signal(signal.SIGTERM)
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await asyncio.wait_for(stream.read(), 5)
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    # A metrics worker killed and restarted recovers every figure from its changelogs, read
    # back before faust starts (reload.py), not through faust's recovery.
    await system.restart("metrics")
    await eventually(lambda: _same(system, c, before))
    assert '"changelogs_reloaded"' in (system.logs / "metrics.log").read_text()

    # A rebuild: a new generation projects the topics from the beginning, beside the live one.
    system.add_proc("metrics-rebuild", "ganshou_metrics", "worker", system.metrics_env(f"rebuild-{rid()[:6]}"), True)
    system.spawn("metrics-rebuild")
    await system.wait_ready("metrics-rebuild")
    await eventually(lambda: _same(system, c, before, "metrics-rebuild"))

    # A partner leaving ends its pairings and withdraws its offerings with it: the town's signing
    # rate then counts neither the unit nor its pairing (it read 1 paired unit of 0 before).
    (partner,) = (await system.partners.ListPartners(papi.ListPartnersRequest(), metadata=system.auth())).partners
    await system.partners.RecordPartnerLeft(papi.RecordPartnerLeftRequest(
        request_id=rid(), partner_id=partner.partner_id, reason="撤出联席会议"), metadata=system.auth())
    left = await system.partners.ListPairings(papi.ListPairingsRequest(partner_id=partner.partner_id),
                                              metadata=system.auth())
    assert [x.active for x in left.pairings] == [False]
    offered = await system.partners.ListOfferings(papi.ListOfferingsRequest(partner_id=partner.partner_id),
                                                  metadata=system.auth())
    assert offered.offerings and not any(o.active for o in offered.offerings)

    async def unpaired() -> bool:
        town = await figures(system)
        return (town.member_units, town.units_with_pairing, town.active_pairings) == (0, 0, 0)

    await eventually(unpaired)
    print(f"\ne2e: {replayed} events replayed; figures unchanged, recovered after kill -9, identical after rebuild")


async def _holds(system, c: str, expected: dict) -> bool:
    return check(await figures(system, c), expected)


async def _same(system, c: str, before: mapi.Figures, name: str = "metrics") -> bool:
    now = await figures(system, c, name)
    assert now == before, f"{now} != {before}"
    return True
