"""The rest of the region's resources: organisation standardisation ("six ones"),
party-member commitments, partners' members registering with communities, volunteers
(personal data sealed like residents'), and extended-hours service windows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ganshou.partner_resource.v1 import events_pb2 as ev
from ganshou.partner_resource.v1 import partner_resource_service_pb2 as api
from ganshou_common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from ganshou_common.eventstore.postgres import PostgresTransaction
from ganshou_common.grpc_scaffold.auth import Principal
from ganshou_common.ids import new_id
from ganshou_common.pii import MasterKey, PostgresKeyRing, seal
from ganshou_common.validation import Violations, decode_page_token, encode_page_token, page_size
from ganshou_partner_resource.adapters import names, views


@dataclass
class RegionApp:
    core: "PartnerResourceApp"  # noqa: F821  (run, append and the store are shared)
    master_key: MasterKey | None

    async def _known_community(self, tx: PostgresTransaction, community_id: str) -> None:
        if not await tx.conn.fetchval("SELECT 1 FROM known_communities WHERE community_id = $1", community_id):
            raise InvalidArgument.field("community_id", f"no community {community_id!r} (known from intake)")

    # ---- organisation standardisation ----------------------------------------------------

    async def enroll(self, who: Principal, cid: str, req: api.EnrollOrganisationRequest):
        v = Violations()
        v.required("name", req.name, 200)
        v.enum("kind", req.kind, ev.OrganisationKind)
        v.code("community_id", req.community_id)
        v.raise_if_any()
        who.require_community(req.community_id)

        async def decide(tx):
            await self._known_community(tx, req.community_id)
            if same := await names.holders(tx.conn, "organisation", api.Organisation, req.name, req.community_id):
                raise AlreadyExists(f"name: {req.community_id} has an organisation named {same[0].name!r} already: "
                                    f"{same[0].organisation_id}")
            oid = new_id()
            await self.core._append(tx, who, cid, req, f"organisation-{oid}", "organisation", 0, ev.OrganisationEnrolled(
                organisation_id=oid, name=req.name, kind=req.kind, community_id=req.community_id), req.community_id)
            await views.put(tx.conn, "organisation", oid, api.Organisation(
                organisation_id=oid, name=req.name, kind=req.kind, community_id=req.community_id),
                communities=[req.community_id])
            return api.EnrollOrganisationResponse(organisation_id=oid)

        return await self.core._run(req, decide, api.EnrollOrganisationResponse)

    async def _organisation_step(self, who, cid, req, response_cls, change):
        v = Violations()
        v.required("organisation_id", req.organisation_id, 64)
        v.raise_if_any()

        async def decide(tx):
            o = await views.get(tx.conn, "organisation", req.organisation_id, api.Organisation, lock=True)
            if o is None:
                raise NotFound(f"no organisation {req.organisation_id!r}")
            who.require_community(o.community_id)
            event = change(o)
            await self.core._append(tx, who, cid, req, f"organisation-{o.organisation_id}", "organisation", -1,
                                    event, o.community_id)
            await views.put(tx.conn, "organisation", o.organisation_id, o, communities=[o.community_id])
            return response_cls(organisation=o)

        return await self.core._run(req, decide, response_cls)

    async def record_item(self, who, cid, req: api.RecordStandardItemRequest):
        if not req.item or req.item not in ev.StandardItem.values():
            raise InvalidArgument.field("item", f"one of {', '.join(ev.StandardItem.keys()[1:])}")

        def change(o: api.Organisation):
            if req.item in o.items_completed:
                raise FailedPrecondition(f"{ev.StandardItem.Name(req.item)} is already complete")
            o.items_completed.append(req.item)
            return ev.StandardItemCompleted(organisation_id=o.organisation_id, item=req.item,
                                            community_id=o.community_id)

        return await self._organisation_step(who, cid, req, api.RecordStandardItemResponse, change)

    async def apply_demonstration(self, who, cid, req: api.ApplyForDemonstrationRequest):
        def change(o: api.Organisation):
            if o.demonstration_applied:
                raise FailedPrecondition("already applied to be a demonstration unit")
            o.demonstration_applied = True
            return ev.DemonstrationApplied(organisation_id=o.organisation_id, community_id=o.community_id)

        return await self._organisation_step(who, cid, req, api.ApplyForDemonstrationResponse, change)

    async def decide_demonstration(self, who, cid, req: api.DecideDemonstrationRequest):
        def change(o: api.Organisation):
            if not o.demonstration_applied:
                raise FailedPrecondition("the organisation has not applied to be a demonstration unit")
            o.demonstration_designated = req.designated
            return ev.DemonstrationDecided(organisation_id=o.organisation_id, community_id=o.community_id,
                                           designated=req.designated)

        return await self._organisation_step(who, cid, req, api.DecideDemonstrationResponse, change)

    async def assign_guidance(self, who, cid, req: api.AssignGuidanceGroupRequest):
        if not req.guidance_group.strip():
            raise InvalidArgument.field("guidance_group", "required")

        def change(o: api.Organisation):
            o.guidance_group = req.guidance_group
            return ev.GuidanceGroupAssigned(organisation_id=o.organisation_id, guidance_group=req.guidance_group)

        return await self._organisation_step(who, cid, req, api.AssignGuidanceGroupResponse, change)

    async def _list(self, who, kind, cls, key, req):
        v = Violations()
        v.code("community_id", req.community_id)
        v.raise_if_any()
        who.require_community(req.community_id)
        limit = page_size(req.page_size)
        items = await views.page(self.core.store.pool, kind, cls, after=decode_page_token(req.page_token),
                                 limit=limit, community_id=req.community_id)
        return items, encode_page_token(key(items[-1])) if len(items) == limit else ""

    async def list_organisations(self, who, req):
        items, token = await self._list(who, "organisation", api.Organisation, lambda o: o.organisation_id, req)
        return api.ListOrganisationsResponse(organisations=items, next_page_token=token)

    # ---- commitments and members --------------------------------------------------------

    async def make_commitment(self, who, cid, req: api.MakeCommitmentRequest):
        v = Violations()
        v.required("member_id", req.member_id, 64)
        v.required("kind", req.kind, 100)
        v.code("community_id", req.community_id)
        v.optional_text("description", req.description)
        v.raise_if_any()
        who.require_community(req.community_id)

        async def decide(tx):
            await self._known_community(tx, req.community_id)
            kid = new_id()
            await self.core._append(tx, who, cid, req, f"commitment-{kid}", "commitment", 0, ev.CommitmentMade(
                commitment_id=kid, member_id=req.member_id, post_id=req.post_id, kind=req.kind,
                community_id=req.community_id, description=req.description), req.community_id)
            await views.put(tx.conn, "commitment", kid, ev.CommitmentMade(commitment_id=kid, community_id=req.community_id),
                            communities=[req.community_id], extra="made")
            return api.MakeCommitmentResponse(commitment_id=kid)

        return await self.core._run(req, decide, api.MakeCommitmentResponse)

    async def fulfil_commitment(self, who, cid, req: api.FulfilCommitmentRequest):
        if not req.commitment_id:
            raise InvalidArgument.field("commitment_id", "required")

        async def decide(tx):
            row = await tx.conn.fetchrow("SELECT body, extra FROM views WHERE kind = 'commitment' AND id = $1 FOR UPDATE",
                                         req.commitment_id)
            if row is None:
                raise NotFound(f"no commitment {req.commitment_id!r}")
            c = ev.CommitmentMade.FromString(row["body"])
            who.require_community(c.community_id)
            if row["extra"] == "fulfilled":
                raise FailedPrecondition("the commitment is already fulfilled")
            await self.core._append(tx, who, cid, req, f"commitment-{c.commitment_id}", "commitment", 1,
                                    ev.CommitmentFulfilled(commitment_id=c.commitment_id, community_id=c.community_id),
                                    c.community_id)
            await views.put(tx.conn, "commitment", c.commitment_id, c, communities=[c.community_id], extra="fulfilled")
            return api.FulfilCommitmentResponse()

        return await self.core._run(req, decide, api.FulfilCommitmentResponse)

    async def register_members(self, who, cid, req: api.RegisterPartnerMembersRequest):
        v = Violations()
        v.required("partner_id", req.partner_id, 64)
        v.code("community_id", req.community_id)
        v.count("members", req.members)
        v.raise_if_any()
        if who.role == "partner_staff":  # a partner registers its own members; cadres their community's
            who.require_partner(req.partner_id)
        else:
            who.require_community(req.community_id)

        async def decide(tx):
            await self.core._partner(tx.conn, req.partner_id)
            await self._known_community(tx, req.community_id)
            rid_ = new_id()
            await self.core._append(tx, who, cid, req, f"membership-{rid_}", "membership", 0, ev.PartnerMembersRegistered(
                registration_id=rid_, partner_id=req.partner_id, community_id=req.community_id, members=req.members),
                req.community_id)
            return api.RegisterPartnerMembersResponse(registration_id=rid_)

        return await self.core._run(req, decide, api.RegisterPartnerMembersResponse)

    # ---- volunteers -----------------------------------------------------------------------

    async def register_team(self, who, cid, req: api.RegisterVolunteerTeamRequest):
        v = Violations()
        v.required("name", req.name, 200)
        v.code("community_id", req.community_id)
        v.raise_if_any()
        who.require_community(req.community_id)

        async def decide(tx):
            await self._known_community(tx, req.community_id)
            if same := await names.holders(tx.conn, "team", ev.VolunteerTeamRegistered, req.name, req.community_id):
                raise AlreadyExists(f"name: {req.community_id} has a volunteer team named {same[0].name!r} already: "
                                    f"{same[0].team_id}")
            tid = new_id()
            e = ev.VolunteerTeamRegistered(team_id=tid, name=req.name, community_id=req.community_id)
            await self.core._append(tx, who, cid, req, f"team-{tid}", "team", 0, e, req.community_id)
            await views.put(tx.conn, "team", tid, e, communities=[req.community_id])
            return api.RegisterVolunteerTeamResponse(team_id=tid)

        return await self.core._run(req, decide, api.RegisterVolunteerTeamResponse)

    async def _team(self, tx, who, team_id: str) -> ev.VolunteerTeamRegistered:
        team = await views.get(tx.conn, "team", team_id, ev.VolunteerTeamRegistered)
        if team is None:
            raise InvalidArgument.field("team_id", f"no volunteer team {team_id!r}")
        who.require_community(team.community_id)
        return team

    async def register_volunteer(self, who, cid, req: api.RegisterVolunteerRequest):
        from ganshou.common.v1 import types_pb2 as t

        v = Violations()
        v.required("team_id", req.team_id, 64)
        v.required("name", req.name, 100)
        v.enum("segment", req.segment, t.Segment)
        v.raise_if_any()
        if self.master_key is None:
            raise FailedPrecondition("volunteers' personal data needs GANSHOU_PII_MASTER_KEY configured")

        async def decide(tx):
            team = await self._team(tx, who, req.team_id)
            vid = new_id()
            subject = f"volunteer-{vid}"
            key = await PostgresKeyRing(tx.conn, self.master_key).key_for(subject, create=True)
            e = ev.VolunteerRegistered(volunteer_id=vid, team_id=team.team_id, community_id=team.community_id,
                                       segment=req.segment, name_sealed=seal(key, subject, "name", req.name),
                                       phone_sealed=seal(key, subject, "phone", req.phone))
            await self.core._append(tx, who, cid, req, subject, "volunteer", 0, e, team.community_id)
            await views.put(tx.conn, "volunteer", vid, ev.VolunteerRegistered(
                volunteer_id=vid, team_id=team.team_id, community_id=team.community_id, segment=req.segment),
                communities=[team.community_id], extra=team.team_id)
            return api.RegisterVolunteerResponse(volunteer_id=vid)

        return await self.core._run(req, decide, api.RegisterVolunteerResponse)

    async def erase_volunteer(self, who, cid, req: api.EraseVolunteerRequest):
        v = Violations()
        v.required("volunteer_id", req.volunteer_id, 64)
        v.required("reason", req.reason, 500)
        v.raise_if_any()

        async def decide(tx):
            vol = await views.get(tx.conn, "volunteer", req.volunteer_id, ev.VolunteerRegistered)
            if vol is None:
                raise NotFound(f"volunteer_id: no volunteer {req.volunteer_id!r}")
            subject = f"volunteer-{vol.volunteer_id}"
            # No master key needed: erasing deletes the wrapped key, it never unwraps it.
            if not await PostgresKeyRing(tx.conn, self.master_key).erase(subject, who.subject):
                raise FailedPrecondition(f"volunteer {vol.volunteer_id} is already erased")
            e = ev.VolunteerErased(volunteer_id=vol.volunteer_id, community_id=vol.community_id,
                                   erased_by=who.subject, reason=req.reason)
            await self.core._append(tx, who, cid, req, subject, "volunteer", -1, e, vol.community_id)
            return api.EraseVolunteerResponse()

        return await self.core._run(req, decide, api.EraseVolunteerResponse)

    async def record_activity(self, who, cid, req: api.RecordVolunteerActivityRequest):
        v = Violations()
        v.required("team_id", req.team_id, 64)
        v.required("title", req.title, 200)
        if not req.volunteers:
            v.add("volunteers", "at least one volunteer's time")
        for i, x in enumerate(req.volunteers):
            if not 0 < x.minutes <= 24 * 60:
                v.add(f"volunteers[{i}].minutes", "from 1 to 1440")
        v.raise_if_any()

        async def decide(tx):
            team = await self._team(tx, who, req.team_id)
            entries = []
            for i, x in enumerate(req.volunteers):
                vol = await views.get(tx.conn, "volunteer", x.volunteer_id, ev.VolunteerRegistered)
                if vol is None or vol.team_id != team.team_id:
                    raise InvalidArgument.field(f"volunteers[{i}].volunteer_id", "not a volunteer of this team")
                entries.append(ev.VolunteerMinutes(volunteer_id=x.volunteer_id, segment=vol.segment, minutes=x.minutes))
            aid = new_id()
            await self.core._append(tx, who, cid, req, f"activity-{aid}", "activity", 0, ev.VolunteerActivityRecorded(
                activity_id=aid, team_id=team.team_id, community_id=team.community_id, title=req.title,
                volunteers=entries), team.community_id)
            return api.RecordVolunteerActivityResponse(activity_id=aid)

        return await self.core._run(req, decide, api.RecordVolunteerActivityResponse)

    # ---- extended-hours service windows -------------------------------------------------------

    async def open_window(self, who, cid, req: api.OpenServiceWindowRequest):
        v = Violations()
        v.enum("office", req.office, ev.ServiceOffice)
        v.code("community_id", req.community_id)
        v.required("schedule", req.schedule, 300)
        if not (req.evenings or req.weekends):
            v.add("evenings", "an extended-hours window opens evenings, weekends or both")
        v.raise_if_any()
        who.require_community(req.community_id)

        async def decide(tx):
            await self._known_community(tx, req.community_id)
            wid = new_id()
            e = ev.ServiceWindowOpened(window_id=wid, office=req.office, community_id=req.community_id,
                                       schedule=req.schedule, evenings=req.evenings, weekends=req.weekends)
            await self.core._append(tx, who, cid, req, f"window-{wid}", "window", 0, e, req.community_id)
            await views.put(tx.conn, "window", wid, api.ServiceWindow(
                window_id=wid, office=req.office, community_id=req.community_id, schedule=req.schedule,
                evenings=req.evenings, weekends=req.weekends), communities=[req.community_id])
            return api.OpenServiceWindowResponse(window_id=wid)

        return await self.core._run(req, decide, api.OpenServiceWindowResponse)

    async def record_after_hours(self, who, cid, req: api.RecordAfterHoursServiceRequest):
        v = Violations()
        v.required("window_id", req.window_id, 64)
        v.day("date", req.date, datetime.now(UTC))
        v.count("evening_person_times", req.evening_person_times, at_least=0)
        v.count("weekend_person_times", req.weekend_person_times, at_least=0)
        if req.evening_person_times == req.weekend_person_times == 0:
            v.add("evening_person_times", "at least one person served")
        v.raise_if_any()

        async def decide(tx):
            w = await views.get(tx.conn, "window", req.window_id, api.ServiceWindow)
            if w is None:
                raise InvalidArgument.field("window_id", f"no service window {req.window_id!r}")
            who.require_community(w.community_id)
            if req.evening_person_times and not w.evenings or req.weekend_person_times and not w.weekends:
                raise FailedPrecondition("the window is not open at those hours")
            rid_ = new_id()
            await self.core._append(tx, who, cid, req, f"afterhours-{rid_}", "afterhours", 0, ev.AfterHoursServed(
                record_id=rid_, window_id=w.window_id, community_id=w.community_id, office=w.office, date=req.date,
                evening_person_times=req.evening_person_times, weekend_person_times=req.weekend_person_times),
                w.community_id)
            return api.RecordAfterHoursServiceResponse(record_id=rid_)

        return await self.core._run(req, decide, api.RecordAfterHoursServiceResponse)

    async def list_windows(self, who, req):
        items, token = await self._list(who, "window", api.ServiceWindow, lambda w: w.window_id, req)
        return api.ListServiceWindowsResponse(windows=items, next_page_token=token)
