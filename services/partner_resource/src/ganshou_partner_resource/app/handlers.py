"""Partner-resource's use cases: commands append their events and update the views in
one transaction, idempotently by request id; the matching consumer answers casework's
help requests; queries read the views. The request messages are the commands."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from google.protobuf.message import Message

from ganshou.casework.v1 import events_pb2 as casework
from ganshou.common.v1 import envelope_pb2, types_pb2 as t
from ganshou.intake.v1 import events_pb2 as intake
from ganshou.partner_resource.v1 import events_pb2 as ev
from ganshou.partner_resource.v1 import partner_resource_service_pb2 as api
from ganshou_common.codec import new_event, unpack
from ganshou_common.commands import execute, fingerprint
from ganshou_common.config import town_zone
from ganshou_common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from ganshou_common.eventstore import ANY_VERSION, NO_STREAM, Metadata, StreamAppend
from ganshou_common.eventstore.postgres import PostgresEventStore, PostgresTransaction
from ganshou_common.grpc_scaffold.auth import Principal, Role
from ganshou_common.ids import new_id
from ganshou_common.validation import Violations, decode_page_token, encode_page_token, page_size
from ganshou_partner_resource.adapters import names, views
from ganshou_partner_resource.domain.rules import Candidate, check_capacity, choose_offering, period_of, valid_period


def _fp(req) -> str:
    return fingerprint(req.DESCRIPTOR.full_name, req.SerializeToString(deterministic=True))


def _meta(who: Principal, cid: str, request_id: str) -> Metadata:
    return Metadata(cid, request_id, who.subject, str(who.role))


def _now() -> datetime:
    return datetime.now(UTC)


def _require_partner_scope(who: Principal, partner_id: str) -> None:
    """Partner staff manage only their own partner; town admins any."""
    who.require_partner(partner_id)


@dataclass
class PartnerResourceApp:
    store: PostgresEventStore
    zone: ZoneInfo = field(default_factory=town_zone)  # the town's months: offerings' capacity periods

    async def _run(self, req, decide: Callable[[PostgresTransaction], "Message"], response_cls):
        async def run(tx: PostgresTransaction) -> bytes:
            return (await decide(tx)).SerializeToString()

        return response_cls.FromString(await execute(self.store, req.request_id, _fp(req), run))

    async def _append(self, tx, who, cid, req, stream: str, kind: str, expected: int, event: Message,
                      community_id: str = "") -> None:
        await tx.append(StreamAppend(stream, kind, expected, [new_event(event, community_id)]),
                        _meta(who, cid, req.request_id))

    async def _partner(self, conn, partner_id: str, field: str = "partner_id") -> api.Partner:
        p = await views.get(conn, "partner", partner_id, api.Partner)
        if p is None:
            raise InvalidArgument.field(field, f"no partner {partner_id!r}")
        return p

    # ---- partners and pairings -------------------------------------------------------------

    async def register_partner(self, who, cid, req: api.RegisterPartnerRequest) -> api.RegisterPartnerResponse:
        v = Violations()
        v.required("name", req.name, 200)
        v.enum("kind", req.kind, ev.PartnerKind)
        v.raise_if_any()

        async def decide(tx):
            # One that left may be registered anew; an active one may not.
            for same in await names.holders(tx.conn, "partner", api.Partner, req.name):
                if same.active:
                    raise AlreadyExists(f"name: a partner named {same.name!r} is registered already: {same.partner_id}")
            pid = new_id()
            await self._append(tx, who, cid, req, f"partner-{pid}", "partner", NO_STREAM,
                               ev.PartnerRegistered(partner_id=pid, name=req.name, kind=req.kind))
            await views.put(tx.conn, "partner", pid, api.Partner(partner_id=pid, name=req.name, kind=req.kind,
                                                                  active=True), partner_id=pid)
            return api.RegisterPartnerResponse(partner_id=pid)

        return await self._run(req, decide, api.RegisterPartnerResponse)

    async def record_partner_left(self, who, cid, req: api.RecordPartnerLeftRequest) -> api.RecordPartnerLeftResponse:
        v = Violations()
        v.required("partner_id", req.partner_id, 64)
        v.required("reason", req.reason, 500)
        v.raise_if_any()

        async def decide(tx):
            p = await self._partner(tx.conn, req.partner_id)
            if not p.active:
                raise FailedPrecondition(f"partner {p.partner_id} has already left")
            await self._append(tx, who, cid, req, f"partner-{p.partner_id}", "partner", ANY_VERSION,
                               ev.PartnerLeft(partner_id=p.partner_id, reason=req.reason))
            p.active = False
            await views.put(tx.conn, "partner", p.partner_id, p, partner_id=p.partner_id)
            # What the partner did goes with it, each by its own event: its pairings end (else the
            # signing rate counted a unit gone: above 100%) and its offerings are withdrawn (else a
            # case's help request could be matched to it).
            for pairing in await views.of_partner(tx.conn, "pairing", api.Pairing, p.partner_id, "active"):
                await self._append(tx, who, cid, req, f"pairing-{pairing.pairing_id}", "pairing", ANY_VERSION,
                                   ev.PairingEnded(pairing_id=pairing.pairing_id, partner_id=p.partner_id,
                                                   community_id=pairing.community_id,
                                                   reason=f"the partner left: {req.reason}"), pairing.community_id)
                pairing.active = False
                await views.put(tx.conn, "pairing", pairing.pairing_id, pairing, p.partner_id, [pairing.community_id],
                                "ended")
            for o in await views.of_partner(tx.conn, "offering", api.Offering, p.partner_id):
                if o.active:
                    await self._append(tx, who, cid, req, f"offering-{o.offering_id}", "offering", ANY_VERSION,
                                       ev.OfferingWithdrawn(offering_id=o.offering_id, partner_id=p.partner_id))
                    o.active = False
                    await views.put(tx.conn, "offering", o.offering_id, o, p.partner_id, list(o.communities_served),
                                    o.category.lower())
            return api.RecordPartnerLeftResponse()

        return await self._run(req, decide, api.RecordPartnerLeftResponse)

    async def sign_pairing(self, who, cid, req: api.SignPairingRequest) -> api.SignPairingResponse:
        v = Violations()
        v.required("partner_id", req.partner_id, 64)
        v.code("community_id", req.community_id)
        v.optional_text("relief_group", req.relief_group, 100)
        v.raise_if_any()
        who.require_community(req.community_id)

        async def decide(tx):
            p = await self._partner(tx.conn, req.partner_id)
            if not p.active:
                raise FailedPrecondition(f"partner {p.partner_id} has left the joint conference")
            if not await tx.conn.fetchval("SELECT 1 FROM known_communities WHERE community_id = $1", req.community_id):
                raise InvalidArgument.field("community_id", f"no community {req.community_id!r} (known from intake)")
            if await tx.conn.fetchval("SELECT 1 FROM views WHERE kind = 'pairing' AND partner_id = $1 AND "
                                      "community_ids = ARRAY[$2] AND extra = 'active'", p.partner_id, req.community_id):
                raise FailedPrecondition(f"partner {p.partner_id} is already paired with {req.community_id}")
            pairing_id, now = new_id(), _now()
            e = ev.PairingSigned(pairing_id=pairing_id, partner_id=p.partner_id, community_id=req.community_id,
                                 relief_group=req.relief_group)
            e.signed_at.FromDatetime(now)
            await self._append(tx, who, cid, req, f"pairing-{pairing_id}", "pairing", NO_STREAM, e, req.community_id)
            view = api.Pairing(pairing_id=pairing_id, partner_id=p.partner_id, community_id=req.community_id,
                               relief_group=req.relief_group, active=True, signed_at=e.signed_at)
            await views.put(tx.conn, "pairing", pairing_id, view, p.partner_id, [req.community_id], "active")
            return api.SignPairingResponse(pairing_id=pairing_id)

        return await self._run(req, decide, api.SignPairingResponse)

    async def _pairing(self, conn, who, pairing_id: str) -> api.Pairing:
        p = await views.get(conn, "pairing", pairing_id, api.Pairing)
        if p is None:
            raise NotFound(f"no pairing {pairing_id!r}")
        who.require_community(p.community_id)
        return p

    async def end_pairing(self, who, cid, req: api.EndPairingRequest) -> api.EndPairingResponse:
        v = Violations()
        v.required("pairing_id", req.pairing_id, 64)
        v.required("reason", req.reason, 500)
        v.raise_if_any()

        async def decide(tx):
            p = await self._pairing(tx.conn, who, req.pairing_id)
            if not p.active:
                raise FailedPrecondition(f"pairing {p.pairing_id} has already ended")
            await self._append(tx, who, cid, req, f"pairing-{p.pairing_id}", "pairing", 1,
                               ev.PairingEnded(pairing_id=p.pairing_id, partner_id=p.partner_id,
                                               community_id=p.community_id, reason=req.reason), p.community_id)
            p.active = False
            await views.put(tx.conn, "pairing", p.pairing_id, p, p.partner_id, [p.community_id], "ended")
            return api.EndPairingResponse()

        return await self._run(req, decide, api.EndPairingResponse)

    async def record_agreement(self, who, cid, req: api.RecordAgreementRequest) -> api.RecordAgreementResponse:
        v = Violations()
        v.required("pairing_id", req.pairing_id, 64)
        v.enum("category", req.category, ev.AgreementCategory)
        v.required("title", req.title, 300)
        v.raise_if_any()

        async def decide(tx):
            p = await self._pairing(tx.conn, who, req.pairing_id)
            if not p.active:
                raise FailedPrecondition(f"pairing {p.pairing_id} has ended")
            aid = new_id()
            await self._append(tx, who, cid, req, f"agreement-{aid}", "agreement", NO_STREAM,
                               ev.AgreementRecorded(agreement_id=aid, pairing_id=p.pairing_id, partner_id=p.partner_id,
                                                    community_id=p.community_id, category=req.category,
                                                    title=req.title), p.community_id)
            await views.put(tx.conn, "agreement", aid, api.Agreement(
                agreement_id=aid, pairing_id=p.pairing_id, partner_id=p.partner_id, community_id=p.community_id,
                category=req.category, title=req.title), p.partner_id, [p.community_id])
            return api.RecordAgreementResponse(agreement_id=aid)

        return await self._run(req, decide, api.RecordAgreementResponse)

    # ---- offerings and deliveries ----------------------------------------------------------

    async def publish_offering(self, who, cid, req: api.PublishOfferingRequest) -> api.PublishOfferingResponse:
        v = Violations()
        v.required("partner_id", req.partner_id, 64)
        v.required("category", req.category, 100)
        v.required("title", req.title, 300)
        v.count("capacity_per_period", req.capacity_per_period)  # person-times per period
        if req.period and not valid_period(req.period):
            v.add("period", "a month as YYYY-MM")
        for i, c in enumerate(req.communities_served):
            if not c:
                v.add(f"communities_served[{i}]", "empty")
        v.raise_if_any()
        _require_partner_scope(who, req.partner_id)

        async def decide(tx):
            p = await self._partner(tx.conn, req.partner_id)
            if not p.active:
                raise FailedPrecondition(f"partner {p.partner_id} has left the joint conference")
            oid, period = new_id(), req.period or period_of(_now(), self.zone)
            e = ev.OfferingPublished(offering_id=oid, partner_id=p.partner_id, category=req.category, title=req.title,
                                     capacity_per_period=req.capacity_per_period, period=period,
                                     communities_served=req.communities_served, schedule=req.schedule)
            await self._append(tx, who, cid, req, f"offering-{oid}", "offering", NO_STREAM, e)
            await views.put(tx.conn, "offering", oid, api.Offering(
                offering_id=oid, partner_id=p.partner_id, category=req.category, title=req.title,
                capacity_per_period=req.capacity_per_period, period=period,
                communities_served=req.communities_served, schedule=req.schedule, active=True),
                p.partner_id, list(req.communities_served), req.category.lower())
            return api.PublishOfferingResponse(offering_id=oid)

        return await self._run(req, decide, api.PublishOfferingResponse)

    async def _offering(self, conn, offering_id: str, field: str = "offering_id", lock: bool = False) -> api.Offering:
        o = await views.get(conn, "offering", offering_id, api.Offering, lock=lock)
        if o is None:
            raise (NotFound(f"no offering {offering_id!r}") if field == "offering_id" and not lock
                   else InvalidArgument.field(field, f"no offering {offering_id!r}"))
        return o

    async def withdraw_offering(self, who, cid, req: api.WithdrawOfferingRequest) -> api.WithdrawOfferingResponse:
        v = Violations()
        v.required("offering_id", req.offering_id, 64)
        v.raise_if_any()

        async def decide(tx):
            o = await self._offering(tx.conn, req.offering_id)
            _require_partner_scope(who, o.partner_id)
            if not o.active:
                raise FailedPrecondition(f"offering {o.offering_id} is already withdrawn")
            await self._append(tx, who, cid, req, f"offering-{o.offering_id}", "offering", ANY_VERSION,
                               ev.OfferingWithdrawn(offering_id=o.offering_id, partner_id=o.partner_id))
            o.active = False
            await views.put(tx.conn, "offering", o.offering_id, o, o.partner_id, list(o.communities_served),
                            o.category.lower())
            return api.WithdrawOfferingResponse()

        return await self._run(req, decide, api.WithdrawOfferingResponse)

    async def record_delivery(self, who, cid, req: api.RecordDeliveryRequest) -> api.RecordDeliveryResponse:
        v = Violations()
        v.required("offering_id", req.offering_id, 64)
        v.code("community_id", req.community_id)
        v.count("person_times", req.person_times)
        v.raise_if_any()
        if who.role != Role.PARTNER_STAFF:  # partner staff deliver wherever their offering serves
            who.require_community(req.community_id)

        async def decide(tx):
            o = await self._offering(tx.conn, req.offering_id, lock=True)  # serialises deliveries of one offering
            _require_partner_scope(who, o.partner_id)
            if not o.active:
                raise FailedPrecondition(f"offering {o.offering_id} is withdrawn")
            if o.communities_served and req.community_id not in o.communities_served:
                raise InvalidArgument.field("community_id", f"offering {o.offering_id} does not serve {req.community_id}")
            segment, household = t.SEGMENT_UNSPECIFIED, req.household_id
            if req.resident_id:
                r = await tx.conn.fetchrow("SELECT * FROM known_residents WHERE resident_id = $1", req.resident_id)
                if r is None or r["community_id"] != req.community_id:
                    raise InvalidArgument.field("resident_id", f"no resident {req.resident_id!r} in {req.community_id}")
                segment, household = r["segment"], household or r["household_id"]
            period = period_of(_now(), self.zone)
            used = await tx.conn.fetchval("SELECT used FROM offering_usage WHERE offering_id = $1 AND period = $2",
                                          o.offering_id, period) or 0
            check_capacity(o.capacity_per_period, used, req.person_times, req.override_capacity)
            did = new_id()
            e = ev.ServiceDelivered(delivery_id=did, offering_id=o.offering_id, partner_id=o.partner_id,
                                    community_id=req.community_id, resident_id=req.resident_id, household_id=household,
                                    person_times=req.person_times, segment=segment, period=period,
                                    over_capacity_override=used + req.person_times > o.capacity_per_period)
            e.delivered_at.FromDatetime(_now())
            await self._append(tx, who, cid, req, f"delivery-{did}", "delivery", NO_STREAM, e, req.community_id)
            await tx.conn.execute(
                "INSERT INTO offering_usage VALUES ($1, $2, $3) ON CONFLICT (offering_id, period) "
                "DO UPDATE SET used = offering_usage.used + EXCLUDED.used", o.offering_id, period, req.person_times)
            await views.put(tx.conn, "delivery", did, api.Delivery(
                delivery_id=did, offering_id=o.offering_id, partner_id=o.partner_id, community_id=req.community_id,
                resident_id=req.resident_id, household_id=household, person_times=req.person_times, period=period,
                over_capacity_override=e.over_capacity_override), o.partner_id, [req.community_id])
            return api.RecordDeliveryResponse(delivery_id=did, used_this_period=used + req.person_times)

        return await self._run(req, decide, api.RecordDeliveryResponse)

    # ---- aid -------------------------------------------------------------------------------

    async def open_aid_programme(self, who, cid, req: api.OpenAidProgrammeRequest) -> api.OpenAidProgrammeResponse:
        v = Violations()
        v.enum("kind", req.kind, ev.AidKind)
        v.required("name", req.name, 200)
        v.fen("budget.fen", req.budget.fen, at_least=0)  # 0: no budget set
        v.raise_if_any()

        async def decide(tx):
            if req.partner_id:
                await self._partner(tx.conn, req.partner_id)
            pid = new_id()
            await self._append(tx, who, cid, req, f"programme-{pid}", "programme", NO_STREAM,
                               ev.AidProgrammeOpened(programme_id=pid, kind=req.kind, name=req.name,
                                                     partner_id=req.partner_id, budget=req.budget))
            await views.put(tx.conn, "programme", pid, api.AidProgramme(
                programme_id=pid, kind=req.kind, name=req.name, partner_id=req.partner_id, budget=req.budget,
                disbursed=t.Money(fen=0)), req.partner_id)
            return api.OpenAidProgrammeResponse(programme_id=pid)

        return await self._run(req, decide, api.OpenAidProgrammeResponse)

    async def disburse_aid(self, who, cid, req: api.DisburseAidRequest) -> api.DisburseAidResponse:
        v = Violations()
        v.required("programme_id", req.programme_id, 64)
        v.required("resident_id", req.resident_id, 64)
        v.fen("amount.fen", req.amount.fen)
        v.raise_if_any()

        async def decide(tx):
            prog = await views.get(tx.conn, "programme", req.programme_id, api.AidProgramme, lock=True)
            if prog is None:
                raise InvalidArgument.field("programme_id", f"no aid programme {req.programme_id!r}")
            r = await tx.conn.fetchrow("SELECT * FROM known_residents WHERE resident_id = $1", req.resident_id)
            if r is None:
                raise InvalidArgument.field("resident_id", f"no resident {req.resident_id!r} (known from intake)")
            who.require_community(r["community_id"])
            if prog.budget.fen and prog.disbursed.fen + req.amount.fen > prog.budget.fen:
                raise FailedPrecondition(f"over budget: {prog.disbursed.fen:,} of {prog.budget.fen:,} fen disbursed, "
                                         f"{req.amount.fen:,} more asked ({prog.budget.fen - prog.disbursed.fen:,} left)")
            did = new_id()
            e = ev.AidDisbursed(disbursement_id=did, programme_id=prog.programme_id, kind=prog.kind,
                                resident_id=req.resident_id, community_id=r["community_id"], segment=r["segment"],
                                care_groups=list(r["care_groups"]), amount=req.amount, case_id=req.case_id,
                                partner_id=req.partner_id or prog.partner_id)
            e.disbursed_at.FromDatetime(_now())
            await self._append(tx, who, cid, req, f"disbursement-{did}", "disbursement", NO_STREAM, e, r["community_id"])
            prog.disbursed.fen += req.amount.fen
            await views.put(tx.conn, "programme", prog.programme_id, prog, prog.partner_id)
            await views.put(tx.conn, "disbursement", did, api.Disbursement(
                disbursement_id=did, programme_id=prog.programme_id, kind=prog.kind, resident_id=req.resident_id,
                community_id=r["community_id"], amount=req.amount, case_id=req.case_id, partner_id=e.partner_id),
                e.partner_id, [r["community_id"]], prog.programme_id)
            return api.DisburseAidResponse(disbursement_id=did)

        return await self._run(req, decide, api.DisburseAidResponse)

    async def reverse_disbursement(self, who, cid, req: api.ReverseDisbursementRequest) -> api.ReverseDisbursementResponse:
        """A wrong disbursement is reversed by an event of its own; nothing is deleted."""
        v = Violations()
        v.required("disbursement_id", req.disbursement_id, 64)
        v.required("reason", req.reason, 500)
        v.raise_if_any()

        async def decide(tx):
            d = await views.get(tx.conn, "disbursement", req.disbursement_id, api.Disbursement, lock=True)
            if d is None:
                raise NotFound(f"no disbursement {req.disbursement_id!r}")
            if d.reversed:
                raise FailedPrecondition(f"disbursement {d.disbursement_id} is already reversed")
            await self._append(tx, who, cid, req, f"disbursement-{d.disbursement_id}", "disbursement", 1,
                               ev.AidDisbursementReversed(disbursement_id=d.disbursement_id, programme_id=d.programme_id,
                                                          kind=d.kind, resident_id=d.resident_id,
                                                          community_id=d.community_id, amount=d.amount,
                                                          reason=req.reason), d.community_id)
            d.reversed, d.reversal_reason = True, req.reason
            await views.put(tx.conn, "disbursement", d.disbursement_id, d, d.partner_id, [d.community_id], d.programme_id)
            prog = await views.get(tx.conn, "programme", d.programme_id, api.AidProgramme, lock=True)
            prog.disbursed.fen -= d.amount.fen
            await views.put(tx.conn, "programme", prog.programme_id, prog, prog.partner_id)
            return api.ReverseDisbursementResponse()

        return await self._run(req, decide, api.ReverseDisbursementResponse)

    # ---- matching: casework's help requests -------------------------------------------------

    async def on_partner_help_requested(self, tx: PostgresTransaction, env: envelope_pb2.EventEnvelope) -> None:
        need = unpack(env, casework.PartnerHelpRequested)
        period = period_of(_now(), self.zone)
        rows = await tx.conn.fetch(
            "SELECT v.body, v.seq, coalesce(u.used, 0) AS used, EXISTS (SELECT 1 FROM views p WHERE p.kind = 'pairing' "
            "AND p.partner_id = v.partner_id AND p.community_ids = ARRAY[$1] AND p.extra = 'active') AS paired "
            "FROM views v LEFT JOIN offering_usage u ON u.offering_id = v.id AND u.period = $2 "
            "WHERE v.kind = 'offering' AND v.extra = $3", need.community_id, period, need.need_category.lower())
        candidates = []
        for r in rows:
            o = api.Offering.FromString(r["body"])
            if o.active:
                candidates.append(Candidate(o.offering_id, o.partner_id, o.category, tuple(o.communities_served),
                                            o.capacity_per_period, r["used"], r["paired"], r["seq"]))
        chosen = choose_offering(candidates, need.community_id, need.need_category)
        if chosen:
            answer: Message = ev.OfferingMatched(request_id=need.request_id, case_id=need.case_id,
                                                 offering_id=chosen.offering_id, partner_id=chosen.partner_id,
                                                 community_id=need.community_id, need_category=need.need_category)
        else:
            answer = ev.NoOfferingAvailable(request_id=need.request_id, case_id=need.case_id,
                                            community_id=need.community_id, need_category=need.need_category,
                                            reason="no active offering of this category with free capacity "
                                                   "serves the community")
        await tx.append(StreamAppend(f"match-{need.request_id}", "match", NO_STREAM,
                                     [new_event(answer, need.community_id)]),
                        Metadata(env.correlation_id, env.event_id, "partner-resource", "system"))

    async def on_community_registered(self, tx, env) -> None:
        c = unpack(env, intake.CommunityRegistered)
        await tx.conn.execute("INSERT INTO known_communities VALUES ($1) ON CONFLICT DO NOTHING", c.community_id)

    async def on_resident_registered(self, tx, env) -> None:
        r = unpack(env, intake.ResidentRegistered)
        await tx.conn.execute("INSERT INTO known_residents VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                              r.resident_id, r.community_id, r.household_id, r.segment, list(r.care_groups))

    def reactions(self) -> dict[str, Callable]:
        return {casework.PartnerHelpRequested.DESCRIPTOR.full_name: self.on_partner_help_requested,
                intake.CommunityRegistered.DESCRIPTOR.full_name: self.on_community_registered,
                intake.ResidentRegistered.DESCRIPTOR.full_name: self.on_resident_registered}

    # ---- queries ------------------------------------------------------------------------------

    async def _page(self, who: Principal, kind: str, cls, key: Callable, req, *, community_filter: bool = True,
                    extra: str = "", any_community: bool = False):
        community = getattr(req, "community_id", "") if community_filter else ""
        partner = getattr(req, "partner_id", "")
        if who.role == Role.PARTNER_STAFF:
            partner = partner or who.partner_id
            who.require_partner(partner)
        elif who.role == Role.COMMUNITY_CADRE and community_filter:
            if not community:
                raise InvalidArgument.field("community_id", "required for a community's cadre")
            who.require_community(community)
        limit = page_size(req.page_size)
        items = await views.page(self.store.pool, kind, cls, after=decode_page_token(req.page_token), limit=limit,
                                 partner_id=partner, community_id=community, extra=extra, any_community=any_community)
        if not items and not req.page_token:  # a mistyped id lists nothing: say which (asked only then)
            named = getattr(req, "partner_id", "")  # as asked; partner staff's own, from the token, is not checked
            if named and await views.get(self.store.pool, "partner", named, api.Partner) is None:
                raise NotFound(f"partner_id: no partner {named!r}")
            if extra and await views.get(self.store.pool, "programme", extra, api.AidProgramme) is None:
                raise NotFound(f"programme_id: no aid programme {extra!r}")
        token = encode_page_token(key(items[-1])) if len(items) == limit else ""
        return items, token

    async def get_partner(self, who, partner_id: str) -> api.Partner:
        p = await views.get(self.store.pool, "partner", partner_id, api.Partner)
        if p is None:
            raise NotFound(f"no partner {partner_id!r}")
        return p

    async def list_partners(self, who, req):
        items, token = await self._page(who, "partner", api.Partner, lambda x: x.partner_id, req, community_filter=False)
        return api.ListPartnersResponse(partners=items, next_page_token=token)

    async def list_pairings(self, who, req):
        items, token = await self._page(who, "pairing", api.Pairing, lambda x: x.pairing_id, req)
        return api.ListPairingsResponse(pairings=items, next_page_token=token)

    async def list_agreements(self, who, req):
        items, token = await self._page(who, "agreement", api.Agreement, lambda x: x.agreement_id, req)
        return api.ListAgreementsResponse(agreements=items, next_page_token=token)

    async def _with_usage(self, o: api.Offering) -> api.Offering:
        o.used_this_period = await self.store.pool.fetchval(
            "SELECT coalesce(max(used), 0) FROM offering_usage WHERE offering_id = $1 AND period = $2",
            o.offering_id, period_of(_now(), self.zone))
        return o

    async def get_offering(self, who, offering_id: str) -> api.Offering:
        o = await views.get(self.store.pool, "offering", offering_id, api.Offering)
        if o is None:
            raise NotFound(f"no offering {offering_id!r}")
        if who.role == Role.COMMUNITY_CADRE and o.communities_served and \
                not any(who.covers_community(c) for c in o.communities_served):
            raise PermissionDenied("this offering does not serve your communities")
        return await self._with_usage(o)

    async def list_offerings(self, who, req):
        items, token = await self._page(who, "offering", api.Offering, lambda x: x.offering_id, req, any_community=True)
        return api.ListOfferingsResponse(offerings=[await self._with_usage(o) for o in items], next_page_token=token)

    async def list_deliveries(self, who, req):
        items, token = await self._page(who, "delivery", api.Delivery, lambda x: x.delivery_id, req)
        return api.ListDeliveriesResponse(deliveries=items, next_page_token=token)

    async def list_programmes(self, who, req):
        items, token = await self._page(who, "programme", api.AidProgramme, lambda x: x.programme_id, req,
                                        community_filter=False)
        return api.ListAidProgrammesResponse(programmes=items, next_page_token=token)

    async def get_disbursement(self, who, disbursement_id: str) -> api.Disbursement:
        d = await views.get(self.store.pool, "disbursement", disbursement_id, api.Disbursement)
        if d is None:
            raise NotFound(f"no disbursement {disbursement_id!r}")
        if who.role == Role.PARTNER_STAFF:
            who.require_partner(d.partner_id)
        else:
            who.require_community(d.community_id)
        return d

    async def get_view(self, who: Principal, kind: str, id_: str, cls, field: str):
        """Get one entity, in the caller's scope: its community for cadres, its partner for
        partner staff."""
        if not id_:
            raise InvalidArgument.field(field, "required")
        item = await views.get(self.store.pool, kind, id_, cls)
        if item is None:
            raise NotFound(f"no {kind} {id_!r}")
        partner = getattr(item, "partner_id", "")
        if who.role == Role.PARTNER_STAFF:
            who.require_partner(partner)
        elif getattr(item, "community_id", ""):
            who.require_community(item.community_id)
        return item

    async def list_disbursements(self, who, req):
        items, token = await self._page(who, "disbursement", api.Disbursement, lambda x: x.disbursement_id, req,
                                        extra=req.programme_id)
        return api.ListDisbursementsResponse(disbursements=items, next_page_token=token)
