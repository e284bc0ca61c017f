"""The rest of the region's resources, end to end through gRPC and PostgreSQL."""

from __future__ import annotations

import base64
import os
import uuid

import asyncpg
import grpc
import pytest

from ganshou.common.v1 import types_pb2 as t
from ganshou.partner_resource.v1 import events_pb2 as ev
from ganshou.partner_resource.v1 import partner_resource_service_pb2 as api
from ganshou_common.grpc_scaffold.auth import Role
from ganshou_common.grpc_scaffold.errors import field_violations

pytestmark = pytest.mark.integration
os.environ.setdefault("GANSHOU_PII_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())


def rid() -> str:
    return uuid.uuid4().hex


async def error_of(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value


async def test_organisations_work_through_the_six_ones(partners, community_id) -> None:
    await partners.knows(community_id)
    cadre, admin, s = partners.auth(Role.COMMUNITY_CADRE, community_id), partners.auth(Role.TOWN_ADMIN), partners.stub
    org = await s.EnrollOrganisation(api.EnrollOrganisationRequest(
        request_id=rid(), name="科苑居委党支部", kind=ev.ORGANISATION_KIND_RESIDENTIAL, community_id=community_id),
        metadata=cadre)
    for item in range(1, 7):
        done = await s.RecordStandardItem(api.RecordStandardItemRequest(
            request_id=rid(), organisation_id=org.organisation_id, item=item), metadata=cadre)
    assert sorted(done.organisation.items_completed) == list(range(1, 7))
    twice = await error_of(s.RecordStandardItem(api.RecordStandardItemRequest(
        request_id=rid(), organisation_id=org.organisation_id, item=1), metadata=cadre))
    assert twice.code() == grpc.StatusCode.FAILED_PRECONDITION
    early = await error_of(s.DecideDemonstration(api.DecideDemonstrationRequest(
        request_id=rid(), organisation_id=org.organisation_id, designated=True), metadata=admin))
    assert early.code() == grpc.StatusCode.FAILED_PRECONDITION
    await s.ApplyForDemonstration(api.ApplyForDemonstrationRequest(request_id=rid(), organisation_id=org.organisation_id),
                                  metadata=cadre)
    decided = await s.DecideDemonstration(api.DecideDemonstrationRequest(
        request_id=rid(), organisation_id=org.organisation_id, designated=True), metadata=admin)
    assert decided.organisation.demonstration_designated
    await s.AssignGuidanceGroup(api.AssignGuidanceGroupRequest(request_id=rid(), organisation_id=org.organisation_id,
                                                               guidance_group="第一指导组"), metadata=admin)
    listed = await s.ListOrganisations(api.ListOrganisationsRequest(community_id=community_id), metadata=cadre)
    assert listed.organisations[0].guidance_group == "第一指导组"
    other = partners.auth(Role.COMMUNITY_CADRE, "c-else")
    assert (await error_of(s.ListOrganisations(api.ListOrganisationsRequest(community_id=community_id),
                                               metadata=other))).code() == grpc.StatusCode.PERMISSION_DENIED


async def test_commitments_members_volunteers_and_after_hours(partners, community_id) -> None:
    await partners.knows(community_id)
    cadre, s = partners.auth(Role.COMMUNITY_CADRE, community_id), partners.stub
    c = await s.MakeCommitment(api.MakeCommitmentRequest(request_id=rid(), member_id="m-1", kind="safety patrol",
                                                         community_id=community_id, description="每周巡逻"),
                               metadata=cadre)
    await s.FulfilCommitment(api.FulfilCommitmentRequest(request_id=rid(), commitment_id=c.commitment_id), metadata=cadre)
    assert (await error_of(s.FulfilCommitment(api.FulfilCommitmentRequest(request_id=rid(), commitment_id=c.commitment_id),
                                              metadata=cadre))).code() == grpc.StatusCode.FAILED_PRECONDITION
    p = await s.RegisterPartner(api.RegisterPartnerRequest(request_id=rid(), name="药物研究所",
                                                           kind=ev.PARTNER_KIND_RESEARCH_INSTITUTE),
                                metadata=partners.auth(Role.TOWN_ADMIN))
    await s.RegisterPartnerMembers(api.RegisterPartnerMembersRequest(
        request_id=rid(), partner_id=p.partner_id, community_id=community_id, members=52),
        metadata=partners.auth(Role.PARTNER_STAFF, partner=p.partner_id))

    team = await s.RegisterVolunteerTeam(api.RegisterVolunteerTeamRequest(request_id=rid(), name="白领青年俱乐部",
                                                                          community_id=community_id), metadata=cadre)
    v = await s.RegisterVolunteer(api.RegisterVolunteerRequest(request_id=rid(), team_id=team.team_id, name="赵晓燕",
                                                               phone="13612345678", segment=t.SEGMENT_WHITE_COLLAR),
                                  metadata=cadre)
    await s.RecordVolunteerActivity(api.RecordVolunteerActivityRequest(
        request_id=rid(), team_id=team.team_id, title="社区义卖",
        volunteers=[api.VolunteerTime(volunteer_id=v.volunteer_id, minutes=150)]), metadata=cadre)
    bad = await error_of(s.RecordVolunteerActivity(api.RecordVolunteerActivityRequest(
        request_id=rid(), team_id=team.team_id, title="x", volunteers=[api.VolunteerTime(volunteer_id="nobody",
                                                                                        minutes=0)]), metadata=cadre))
    assert "volunteers[0].minutes" in field_violations(bad)

    w = await s.OpenServiceWindow(api.OpenServiceWindowRequest(
        request_id=rid(), office=ev.SERVICE_OFFICE_SOCIAL_SECURITY, community_id=community_id,
        schedule="周二、周四 18:00—20:00", evenings=True), metadata=cadre)
    await s.RecordAfterHoursService(api.RecordAfterHoursServiceRequest(
        request_id=rid(), window_id=w.window_id, date="2026-11-26", evening_person_times=14), metadata=cadre)
    closed = await error_of(s.RecordAfterHoursService(api.RecordAfterHoursServiceRequest(
        request_id=rid(), window_id=w.window_id, date="2026-11-28", weekend_person_times=3), metadata=cadre))
    assert closed.code() == grpc.StatusCode.FAILED_PRECONDITION
    for day, times, field in (("2026-02-30", 1, "date"), ("2999-01-01", 1, "date"),
                              ("2026-11-26", 2**62, "evening_person_times")):
        bad = await error_of(s.RecordAfterHoursService(api.RecordAfterHoursServiceRequest(
            request_id=rid(), window_id=w.window_id, date=day, evening_person_times=times), metadata=cadre))
        assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and field in field_violations(bad), (day, times)
    windows = await s.ListServiceWindows(api.ListServiceWindowsRequest(community_id=community_id), metadata=cadre)
    assert [x.office for x in windows.windows] == [ev.SERVICE_OFFICE_SOCIAL_SECURITY]

    conn = await asyncpg.connect(partners.dsn)
    payloads = [bytes(r[0]) for r in await conn.fetch("SELECT payload FROM events")]
    await conn.close()
    assert not any("赵晓燕".encode() in p or b"13612345678" in p for p in payloads), "volunteer data in plaintext"


async def test_one_name_one_partner_organisation_and_team(partners, community_id) -> None:
    """A form sent twice with a new request id would count one partner or organisation twice."""
    await partners.knows(community_id)
    await partners.knows(f"{community_id}-b")
    admin, cadre, s = partners.auth(Role.TOWN_ADMIN), partners.auth(Role.COMMUNITY_CADRE, community_id), partners.stub
    p = await s.RegisterPartner(api.RegisterPartnerRequest(request_id=rid(), name="张江 药谷公司",
                                                           kind=ev.PARTNER_KIND_COMPANY), metadata=admin)
    again = await error_of(s.RegisterPartner(api.RegisterPartnerRequest(  # spaces around and between
        request_id=rid(), name=" 张江  药谷公司 ", kind=ev.PARTNER_KIND_COMPANY), metadata=admin))
    assert again.code() == grpc.StatusCode.ALREADY_EXISTS and p.partner_id in again.details()
    await s.RecordPartnerLeft(api.RecordPartnerLeftRequest(request_id=rid(), partner_id=p.partner_id, reason="撤出"),
                              metadata=admin)
    back = await s.RegisterPartner(api.RegisterPartnerRequest(request_id=rid(), name="张江 药谷公司",
                                                              kind=ev.PARTNER_KIND_COMPANY), metadata=admin)
    assert back.partner_id != p.partner_id  # one that left may come back, once
    thrice = await error_of(s.RegisterPartner(api.RegisterPartnerRequest(
        request_id=rid(), name="张江 药谷公司", kind=ev.PARTNER_KIND_COMPANY), metadata=admin))
    assert thrice.code() == grpc.StatusCode.ALREADY_EXISTS and back.partner_id in thrice.details()

    org = api.EnrollOrganisationRequest(name="ＡＢＣ党支部", kind=ev.ORGANISATION_KIND_RESIDENTIAL, community_id=community_id)
    first = await s.EnrollOrganisation(api.EnrollOrganisationRequest(request_id=rid(), name="abc党支部", kind=org.kind,
                                                                     community_id=community_id), metadata=cadre)
    org.request_id = rid()
    err = await error_of(s.EnrollOrganisation(org, metadata=cadre))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS and first.organisation_id in err.details()
    org.request_id, org.community_id = rid(), f"{community_id}-b"  # the same name in another community is another
    assert (await s.EnrollOrganisation(org, metadata=admin)).organisation_id

    team = api.RegisterVolunteerTeamRequest(request_id=rid(), name="银发志愿队", community_id=community_id)
    await s.RegisterVolunteerTeam(team, metadata=cadre)
    team.request_id = rid()
    assert (await error_of(s.RegisterVolunteerTeam(team, metadata=cadre))).code() == grpc.StatusCode.ALREADY_EXISTS


async def test_a_volunteer_is_erased_and_their_hours_stay(partners, community_id) -> None:
    await partners.knows(community_id)
    cadre, admin, s = partners.auth(Role.COMMUNITY_CADRE, community_id), partners.auth(Role.TOWN_ADMIN), partners.stub
    team = await s.RegisterVolunteerTeam(api.RegisterVolunteerTeamRequest(request_id=rid(), name=f"护河队 {rid()[:6]}",
                                                                          community_id=community_id), metadata=cadre)
    v = await s.RegisterVolunteer(api.RegisterVolunteerRequest(request_id=rid(), team_id=team.team_id, name="钱志强",
                                                               phone="13512345678", segment=t.SEGMENT_LOCAL),
                                  metadata=cadre)
    erase = api.EraseVolunteerRequest(request_id=rid(), volunteer_id=v.volunteer_id, reason="本人申请")
    assert (await error_of(s.EraseVolunteer(erase, metadata=cadre))).code() == grpc.StatusCode.PERMISSION_DENIED
    await s.EraseVolunteer(erase, metadata=admin)
    await s.EraseVolunteer(erase, metadata=admin)  # a retry: the first answer
    again = await error_of(s.EraseVolunteer(api.EraseVolunteerRequest(
        request_id=rid(), volunteer_id=v.volunteer_id, reason="再次"), metadata=admin))
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION
    unknown = await error_of(s.EraseVolunteer(api.EraseVolunteerRequest(
        request_id=rid(), volunteer_id="nobody", reason="x"), metadata=admin))
    assert unknown.code() == grpc.StatusCode.NOT_FOUND and "volunteer_id" in unknown.details()
    bad = await error_of(s.EraseVolunteer(api.EraseVolunteerRequest(request_id=rid(), volunteer_id=v.volunteer_id),
                                          metadata=admin))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and "reason" in field_violations(bad)
    # Their hours are still theirs, counted by id.
    await s.RecordVolunteerActivity(api.RecordVolunteerActivityRequest(
        request_id=rid(), team_id=team.team_id, title="清理河道",
        volunteers=[api.VolunteerTime(volunteer_id=v.volunteer_id, minutes=90)]), metadata=cadre)

    conn = await asyncpg.connect(partners.dsn)
    subject = f"volunteer-{v.volunteer_id}"
    assert not await conn.fetchval("SELECT count(*) FROM subject_keys WHERE subject_id = $1", subject)
    events = [r["event_type"] for r in await conn.fetch(
        "SELECT event_type FROM events WHERE stream_id = $1 ORDER BY version", subject)]
    await conn.close()
    assert events == ["ganshou.partner_resource.v1.VolunteerRegistered", "ganshou.partner_resource.v1.VolunteerErased"]
