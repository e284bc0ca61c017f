"""Intake's use cases. Each command: check its fields, then in one transaction read what
it needs from the read models, seal personal data, append its events, update the read
models, and record the result under the request id. The transaction is the command's own
or, under group commit (the composition root's choice), shared with concurrent commands:
the same outcome for each (ganshou_common.group_commit).

The request messages are the commands (RegisterHouseholdRequest is the order "register
this household"): a dataclass copy of each would add only a mapping to keep in sync.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ganshou.common.v1 import types_pb2
from ganshou.intake.v1 import events_pb2 as ev
from ganshou.intake.v1 import intake_service_pb2 as api
from ganshou_common.codec import new_event
from ganshou_common.commands import Runner, execute, fingerprint, per_command
from ganshou_common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from ganshou_common.eventstore import NO_STREAM, Metadata, StreamAppend
from ganshou_common.eventstore.postgres import PostgresEventStore, PostgresTransaction
from ganshou_common.grpc_scaffold.auth import Principal, Role
from ganshou_common.ids import derived_id, new_id
from ganshou_common.pii import ERASED, MasterKey, PostgresKeyRing, Sealer, record_access, seal, unseal
from ganshou_common.validation import Violations, decode_page_token, encode_page_token, page_size
from ganshou_intake.adapters import call_people, id_numbers
from ganshou_intake.adapters import read_models as rm
from ganshou_intake.adapters.known_communities import KnownCommunities
from ganshou_intake.domain.events import call_raises_demand, demand_segment, stream, ts, urgency_of_call
from ganshou_intake.domain.validation import PHONE_FORMAT, check_household, check_resident, valid_phone

# A call is logged after it ends, at worst after a few days' outage of the hotline's system;
# one older than this would rewrite figures long reported.
CALL_LOGGED_WITHIN = timedelta(days=7)
# A visiting campaign (走千家) is a season's work; a longer one would be due for ever.
CAMPAIGN_AT_MOST = timedelta(days=366)


def _already_registered(field: str, holder: str) -> str:
    return (f"{field}: this ID number is registered already, as resident {holder} (one person, one "
            "resident: if they moved, erase that record first)")


def _meta(who: Principal, correlation_id: str, request_id: str) -> Metadata:
    return Metadata(correlation_id, request_id, who.subject, str(who.role))


def _fp(req) -> str:
    return fingerprint(req.DESCRIPTOR.full_name, req.SerializeToString(deterministic=True))


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _NewHousehold:
    """A household about to be registered, with its residents' ids (derived from its own, so
    a retried import finds the same people)."""

    household_id: str
    resident_ids: list[str]
    req: api.RegisterHouseholdRequest

    @classmethod
    def of(cls, household_id: str, req: api.RegisterHouseholdRequest) -> _NewHousehold:
        return cls(household_id, [derived_id(household_id, str(i)) for i in range(len(req.residents))], req)


@dataclass
class IntakeApp:
    store: PostgresEventStore
    master_key: MasterKey
    id_number_key: bytes  # for the digests of ID numbers (id_numbers.py), from pii.lookup_key
    run: Runner | None = None  # each command in its own transaction unless given (group commit)

    def __post_init__(self) -> None:
        self._run: Runner = self.run or per_command(self.store)
        self._communities = KnownCommunities(self.store.pool)

    # ---- commands ----------------------------------------------------------------------

    async def register_community(self, who: Principal, cid: str, req: api.RegisterCommunityRequest) -> api.RegisterCommunityResponse:
        v = Violations()
        v.code("community_id", req.community_id)
        v.required("name", req.name, 100)
        v.enum("kind", req.kind, ev.CommunityKind)
        v.raise_if_any()

        async def decide(tx: PostgresTransaction) -> bytes:
            if await rm.community_exists(tx.conn, req.community_id):
                raise AlreadyExists(f"community {req.community_id} is already registered")
            e = ev.CommunityRegistered(community_id=req.community_id, name=req.name, kind=req.kind)
            await tx.append(StreamAppend(stream("community", req.community_id), "community", NO_STREAM,
                                         [new_event(e, req.community_id)]), _meta(who, cid, req.request_id))
            await rm.insert_community(tx.conn, req.community_id, req.name, req.kind)
            return api.RegisterCommunityResponse(community_id=req.community_id).SerializeToString()

        return api.RegisterCommunityResponse.FromString(await self._run(req.request_id, _fp(req), decide))

    async def _new_keys(self, tx: PostgresTransaction, households: list[_NewHousehold]) -> dict[str, bytes]:
        """One key per new household and resident, created together."""
        subjects = [stream("household", h.household_id) for h in households]
        subjects += [stream("resident", r) for h in households for r in h.resident_ids]
        return await PostgresKeyRing(tx.conn, self.master_key).create_many(subjects)

    async def _claim_id_numbers(self, tx: PostgresTransaction, households: list[_NewHousehold]) -> dict[str, str]:
        """Claim the ID numbers of new households' residents: {resident id: the resident
        already holding its number} for each one refused (id_numbers.py)."""
        claims = [(id_numbers.digest(self.id_number_key, r.id_number), rid)
                  for h in households for rid, r in zip(h.resident_ids, h.req.residents, strict=True) if r.id_number]
        return await id_numbers.claim(tx.conn, claims)

    def _stage_household(self, keys: dict[str, bytes], new: _NewHousehold
                         ) -> tuple[list[StreamAppend], rm.HouseholdRow, list[rm.ResidentRow]]:
        """The events and read-model rows of one new household and its residents."""
        req, household_id = new.req, new.household_id
        subject = stream("household", household_id)
        row = rm.HouseholdRow(household_id, req.community_id, seal(keys[subject], subject, "address", req.address),
                              list(req.segments), list(req.care_groups))
        appends = [StreamAppend(subject, "household", NO_STREAM, [new_event(
            ev.HouseholdRegistered(household_id=household_id, community_id=req.community_id,
                                   address_sealed=row.address_sealed, segments=row.segments,
                                   care_groups=row.care_groups), req.community_id)])]
        residents = []
        for rid, r in zip(new.resident_ids, req.residents, strict=True):
            res_row, append = self._stage_resident(keys[stream("resident", rid)], rid, household_id, req.community_id, r)
            residents.append(res_row)
            appends.append(append)
        return appends, row, residents

    @staticmethod
    def _stage_resident(key: bytes, rid: str, household_id: str, community_id: str,
                        r: api.ResidentInput) -> tuple[rm.ResidentRow, StreamAppend]:
        subject = stream("resident", rid)
        sealed = Sealer(key, subject)
        row = rm.ResidentRow(rid, household_id, community_id, r.segment, list(r.care_groups),
                             sealed("name", r.name), sealed("phone", r.phone), sealed("id_number", r.id_number.upper()),
                             False)
        e = ev.ResidentRegistered(resident_id=rid, household_id=household_id, community_id=community_id,
                                  segment=r.segment, care_groups=r.care_groups, name_sealed=row.name_sealed,
                                  phone_sealed=row.phone_sealed, id_number_sealed=row.id_number_sealed)
        return row, StreamAppend(subject, "resident", NO_STREAM, [new_event(e, community_id)])

    async def register_household(self, who: Principal, cid: str, req: api.RegisterHouseholdRequest) -> api.RegisterHouseholdResponse:
        v = Violations()
        check_household(v, req)
        v.raise_if_any()
        who.require_community(req.community_id)

        async def decide(tx: PostgresTransaction) -> bytes:
            if not await self._communities.exists(tx.conn, req.community_id):
                raise InvalidArgument.field("community_id", f"no community {req.community_id!r}")
            new = _NewHousehold.of(new_id(), req)
            held = await self._claim_id_numbers(tx, [new])
            for i, rid in enumerate(new.resident_ids):
                if rid in held:
                    raise AlreadyExists(_already_registered(f"residents[{i}].id_number", held[rid]))
            keys = await self._new_keys(tx, [new])
            appends, row, residents = self._stage_household(keys, new)
            await tx.append_many(appends, _meta(who, cid, req.request_id))
            await rm.insert_households(tx.conn, [row])
            if residents:
                await rm.insert_residents(tx.conn, residents)
            return api.RegisterHouseholdResponse(household_id=new.household_id,
                                                 resident_ids=[r.resident_id for r in residents]).SerializeToString()

        return api.RegisterHouseholdResponse.FromString(await self._run(req.request_id, _fp(req), decide))

    async def register_resident(self, who: Principal, cid: str, req: api.RegisterResidentRequest) -> api.RegisterResidentResponse:
        v = Violations()
        v.required("household_id", req.household_id, 64)
        check_resident(v, "resident", req.resident)
        v.raise_if_any()

        async def decide(tx: PostgresTransaction) -> bytes:
            h = await self._household_in_scope(tx.conn, who, req.household_id)
            rid = new_id()
            if req.resident.id_number:
                held = await id_numbers.claim(tx.conn, [(id_numbers.digest(self.id_number_key, req.resident.id_number), rid)])
                if held:
                    raise AlreadyExists(_already_registered("resident.id_number", held[rid]))
            keys = await PostgresKeyRing(tx.conn, self.master_key).create_many([stream("resident", rid)])
            row, append = self._stage_resident(keys[stream("resident", rid)], rid, h.household_id, h.community_id,
                                               req.resident)
            await tx.append(append, _meta(who, cid, req.request_id))
            await rm.insert_residents(tx.conn, [row])
            return api.RegisterResidentResponse(resident_id=rid).SerializeToString()

        return api.RegisterResidentResponse.FromString(await self._run(req.request_id, _fp(req), decide))

    async def _household_in_scope(self, conn, who: Principal, household_id: str, field: str = "household_id") -> rm.HouseholdRow:
        h = await rm.household(conn, household_id)
        if h is None:
            raise NotFound(f"no household {household_id!r}") if field == "household_id" else \
                InvalidArgument.field(field, f"no household {household_id!r}")
        who.require_community(h.community_id)
        return h

    async def _household_of(self, conn, community_id: str, household_id: str) -> rm.HouseholdRow | None:
        """The community must exist; the household, when named, must be one of its own."""
        if not household_id:
            if not await self._communities.exists(conn, community_id):
                raise InvalidArgument.field("community_id", f"no community {community_id!r}")
            return None
        exists, h = await rm.community_and_household(conn, community_id, household_id)
        if not exists:
            raise InvalidArgument.field("community_id", f"no community {community_id!r}")
        if h is None or h.community_id != community_id:
            raise InvalidArgument.field("household_id", f"no household {household_id!r} in {community_id}")
        return h

    async def open_visit_campaign(self, who: Principal, cid: str, req: api.OpenVisitCampaignRequest) -> api.OpenVisitCampaignResponse:
        v = Violations()
        v.code("community_id", req.community_id)
        v.required("title", req.title, 200)
        if not req.HasField("starts_at"):
            v.add("starts_at", "required")
        if not req.HasField("ends_at"):
            v.add("ends_at", "required")
        elif req.HasField("starts_at") and req.ends_at.ToDatetime() <= req.starts_at.ToDatetime():
            v.add("ends_at", "must be after starts_at")
        elif req.HasField("starts_at") and req.ends_at.ToDatetime() - req.starts_at.ToDatetime() > CAMPAIGN_AT_MOST:
            v.add("ends_at", f"a campaign runs at most {CAMPAIGN_AT_MOST.days} days from starts_at")
        v.raise_if_any()
        who.require_community(req.community_id)

        async def decide(tx: PostgresTransaction) -> bytes:
            if not await self._communities.exists(tx.conn, req.community_id):
                raise InvalidArgument.field("community_id", f"no community {req.community_id!r}")
            if req.household_ids:
                found = await rm.households_in(tx.conn, req.community_id, list(req.household_ids))
                missing = [h for h in req.household_ids if h not in found]
                if missing:
                    raise InvalidArgument.field("household_ids", f"not households of {req.community_id}: {missing[:5]}")
                due = sorted(set(req.household_ids))
            else:
                due = await rm.households_of_community(tx.conn, req.community_id)
            campaign_id = new_id()
            e = ev.VisitCampaignOpened(campaign_id=campaign_id, community_id=req.community_id, title=req.title,
                                       starts_at=req.starts_at, ends_at=req.ends_at,
                                       whole_community=not req.household_ids,
                                       due_household_ids=due if req.household_ids else [], households_due=len(due))
            await tx.append(StreamAppend(stream("campaign", campaign_id), "campaign", NO_STREAM,
                                         [new_event(e, req.community_id)]), _meta(who, cid, req.request_id))
            await rm.insert_campaign(tx.conn, rm.CampaignRow(campaign_id, req.community_id,
                                                             req.starts_at.ToDatetime(tzinfo=UTC),
                                                             req.ends_at.ToDatetime(tzinfo=UTC), not req.household_ids),
                                     req.title, due)
            return api.OpenVisitCampaignResponse(campaign_id=campaign_id, households_due=len(due)).SerializeToString()

        return api.OpenVisitCampaignResponse.FromString(await self._run(req.request_id, _fp(req), decide))

    async def _demand(self, tx: PostgresTransaction, *, community_id: str, household: rm.HouseholdRow | None,
                      resident_id: str, channel: int, urgency: int, category: str, description: str,
                      at: datetime, call_id: str = "", campaign_id: str = "") -> tuple[StreamAppend, ev.DemandRaised]:
        segment, care = None, list(household.care_groups) if household else []
        if resident_id:
            r = await rm.resident(tx.conn, resident_id)
            if r is None or (household and r.household_id != household.household_id) or r.community_id != community_id:
                raise InvalidArgument.field("resident_id", f"no resident {resident_id!r} in this household/community")
            segment, care = r.segment, sorted(set(care) | set(r.care_groups))
        demand_id = new_id()
        e = ev.DemandRaised(demand_id=demand_id, community_id=community_id,
                            household_id=household.household_id if household else "", resident_id=resident_id,
                            channel=channel, urgency=urgency, category=category, description=description,
                            segment=demand_segment(segment, household.segments if household else []),
                            care_groups=care, raised_at=ts(at), call_id=call_id, campaign_id=campaign_id)
        await rm.insert_demand(tx, e)
        return StreamAppend(stream("demand", demand_id), "demand", NO_STREAM, [new_event(e, community_id, at)]), e

    async def record_visit(self, who: Principal, cid: str, req: api.RecordVisitRequest) -> api.RecordVisitResponse:
        v = Violations()
        v.required("campaign_id", req.campaign_id, 64)
        v.required("household_id", req.household_id, 64)
        v.enum("outcome", req.outcome, ev.VisitOutcome)
        v.optional_text("notes", req.notes)
        if req.demands and req.outcome != ev.VISIT_OUTCOME_MET:
            v.add("demands", "only a visit where the household was met can hear demands")
        for i, d in enumerate(req.demands):
            v.required(f"demands[{i}].category", d.category, 100)
            v.required(f"demands[{i}].description", d.description, 2000)
            v.enum(f"demands[{i}].urgency", d.urgency, types_pb2.Urgency)
        if req.HasField("visited_at"):
            v.not_in_future("visited_at", req.visited_at.ToDatetime(tzinfo=UTC), _now())
        v.raise_if_any()

        async def decide(tx: PostgresTransaction) -> bytes:
            c, due, h = await rm.visit_context(tx.conn, req.campaign_id, req.household_id)
            if c is None:
                raise InvalidArgument.field("campaign_id", f"no campaign {req.campaign_id!r}")
            who.require_community(c.community_id)
            at = req.visited_at.ToDatetime(tzinfo=UTC) if req.HasField("visited_at") else _now()
            if not (c.starts_at <= at <= c.ends_at):
                raise FailedPrecondition(f"campaign {c.campaign_id} is open from {c.starts_at:%Y-%m-%d} to "
                                         f"{c.ends_at:%Y-%m-%d}; the visit is at {at:%Y-%m-%d %H:%M}")
            if not due:
                raise InvalidArgument.field("household_id", f"household is not due in campaign {c.campaign_id}")
            if h is None:
                raise InvalidArgument.field("household_id", f"no household {req.household_id!r}")
            notes = b""
            if req.notes:  # the household's key is read only when there are notes to seal
                hkey = await PostgresKeyRing(tx.conn, self.master_key).key_for(stream("household", h.household_id))
                notes = seal(hkey, stream("household", h.household_id), "visit_notes", req.notes) if hkey else b""
            appends, demand_ids = [], []
            for d in req.demands:
                append, e = await self._demand(tx, community_id=h.community_id, household=h, resident_id=d.resident_id,
                                               channel=types_pb2.CHANNEL_VISIT, urgency=d.urgency, category=d.category,
                                               description=d.description, at=at, campaign_id=c.campaign_id)
                appends.append(append)
                demand_ids.append(e.demand_id)
            visited = ev.HouseholdVisited(campaign_id=c.campaign_id, household_id=h.household_id,
                                          community_id=h.community_id, visitor=who.subject, outcome=req.outcome,
                                          notes_sealed=notes, demands_heard=len(req.demands), segments=h.segments,
                                          visited_at=ts(at))
            # The visit goes on the household's stream: visits to different households never contend.
            appends.insert(0, StreamAppend(stream("household", h.household_id), "household", -1,
                                           [new_event(visited, h.community_id, at)]))
            await tx.append_many(appends, _meta(who, cid, req.request_id))
            return api.RecordVisitResponse(demand_ids=demand_ids).SerializeToString()

        return api.RecordVisitResponse.FromString(await self._run(req.request_id, _fp(req), decide,
                                                                   key=stream("household", req.household_id)))

    async def raise_demand(self, who: Principal, cid: str, req: api.RaiseDemandRequest) -> api.RaiseDemandResponse:
        v = Violations()
        v.code("community_id", req.community_id)
        v.enum("channel", req.channel, types_pb2.Channel)
        if req.channel in (types_pb2.CHANNEL_VISIT, types_pb2.CHANNEL_HOTLINE):
            v.add("channel", "visits and hotline calls raise their demands themselves: use RecordVisit or LogHotlineCall")
        v.enum("urgency", req.urgency, types_pb2.Urgency)
        v.required("category", req.category, 100)
        v.required("description", req.description, 2000)
        v.raise_if_any()
        who.require_community(req.community_id)

        async def decide(tx: PostgresTransaction) -> bytes:
            h = await self._household_of(tx.conn, req.community_id, req.household_id)
            append, e = await self._demand(tx, community_id=req.community_id, household=h, resident_id=req.resident_id,
                                           channel=req.channel, urgency=req.urgency, category=req.category,
                                           description=req.description, at=_now())
            await tx.append(append, _meta(who, cid, req.request_id))
            return api.RaiseDemandResponse(demand_id=e.demand_id).SerializeToString()

        return api.RaiseDemandResponse.FromString(await self._run(req.request_id, _fp(req), decide))

    async def log_hotline_call(self, who: Principal, cid: str, req: api.LogHotlineCallRequest) -> api.LogHotlineCallResponse:
        v = Violations()
        v.code("community_id", req.community_id)
        v.enum("kind", req.kind, ev.CallKind)
        v.required("summary", req.summary, 2000)
        if call_raises_demand(req.kind):
            v.required("category", req.category, 100)
        if req.caller_phone and not valid_phone(req.caller_phone):
            v.add("caller_phone", PHONE_FORMAT)
        if req.HasField("received_at"):
            v.recent("received_at", req.received_at.ToDatetime(tzinfo=UTC), _now(), CALL_LOGGED_WITHIN)
        v.raise_if_any()
        who.require_community(req.community_id)

        async def decide(tx: PostgresTransaction) -> bytes:
            h = await self._household_of(tx.conn, req.community_id, req.household_id)
            at = req.received_at.ToDatetime(tzinfo=UTC) if req.HasField("received_at") else _now()
            call_id = new_id()
            appends, demand_id = [], ""
            if call_raises_demand(req.kind):
                append, e = await self._demand(tx, community_id=req.community_id, household=h,
                                               resident_id=req.resident_id, channel=types_pb2.CHANNEL_HOTLINE,
                                               urgency=urgency_of_call(req.kind), category=req.category,
                                               description=req.summary, at=at, call_id=call_id)
                appends.append(append)
                demand_id = e.demand_id
            phone = b""
            if req.caller_phone:  # the caller's number is personal data, sealed under the call's own key
                key = await PostgresKeyRing(tx.conn, self.master_key).key_for(stream("call", call_id), create=True)
                phone = seal(key, stream("call", call_id), "caller_phone", req.caller_phone)
            call = ev.HotlineCallReceived(call_id=call_id, community_id=req.community_id, kind=req.kind,
                                          household_id=req.household_id, resident_id=req.resident_id,
                                          caller_phone_sealed=phone, summary=req.summary, received_at=ts(at),
                                          demand_id=demand_id, operator=who.subject)
            appends.insert(0, StreamAppend(stream("call", call_id), "call", NO_STREAM, [new_event(call, req.community_id, at)]))
            if (named := call_people.row_of(call)) is not None:
                await call_people.record(tx.conn, [named])
            await tx.append_many(appends, _meta(who, cid, req.request_id))
            return api.LogHotlineCallResponse(call_id=call_id, demand_id=demand_id).SerializeToString()

        return api.LogHotlineCallResponse.FromString(await self._run(req.request_id, _fp(req), decide))

    async def erase_resident(self, who: Principal, cid: str, req: api.EraseResidentRequest) -> api.EraseResidentResponse:
        v = Violations()
        v.required("resident_id", req.resident_id, 64)
        v.required("reason", req.reason, 500)
        v.raise_if_any()

        async def decide(tx: PostgresTransaction) -> bytes:
            r = await rm.resident(tx.conn, req.resident_id)
            if r is None:
                raise NotFound(f"no resident {req.resident_id!r}")
            if r.erased:
                raise FailedPrecondition(f"resident {req.resident_id} is already erased")
            ring = PostgresKeyRing(tx.conn, self.master_key)
            await ring.erase(stream("resident", r.resident_id), who.subject)
            await rm.mark_erased(tx.conn, r.resident_id)
            await id_numbers.release(tx.conn, [r.resident_id])
            # The household's address (and visit notes) are its residents' too: erased with
            # the last of them. A call's phone is under the call's key: erased with whom it names.
            last = not await rm.others_unerased(tx.conn, r.household_id, r.resident_id)
            calls = 0
            for call_id in await call_people.naming(tx.conn, r.resident_id, r.household_id if last else None):
                calls += await ring.erase(stream("call", call_id), who.subject)
            if last:
                await ring.erase(stream("household", r.household_id), who.subject)
            e = ev.ResidentErased(resident_id=r.resident_id, community_id=r.community_id, erased_by=who.subject,
                                  reason=req.reason)
            await tx.append(StreamAppend(stream("resident", r.resident_id), "resident", -1,
                                         [new_event(e, r.community_id)]), _meta(who, cid, req.request_id))
            return api.EraseResidentResponse(household_erased=last, calls_erased=calls).SerializeToString()

        return api.EraseResidentResponse.FromString(await self._run(req.request_id, _fp(req), decide))

    # ---- bulk import ---------------------------------------------------------------------

    async def import_chunk(self, who: Principal, cid: str, request_id: str,
                           rows: list[tuple[int, api.RegisterHouseholdRequest]]) -> api.ImportHouseholdsResponse:
        """Validate a chunk of rows, keep the good ones in one transaction, report the bad.

        Household ids derive from the import's request id and the row number, so a retried
        import (same request id) finds each row already recorded and adds nothing.
        """
        out = api.ImportHouseholdsResponse()
        good: list[tuple[int, api.RegisterHouseholdRequest]] = []
        for n, row in rows:
            v = Violations()
            check_household(v, row)
            if v.items:
                out.rejected.add(row_number=n, field=v.items[0].field,
                                 reason="; ".join(f"{x.field}: {x.description}" for x in v.items))
            elif not who.covers_community(row.community_id):
                out.rejected.add(row_number=n, field="community_id", reason=f"no access to community {row.community_id}")
            else:
                good.append((n, row))
        if not good:
            return out
        chunk_id = f"{request_id}#{good[0][0]}-{good[-1][0]}"
        fp = fingerprint("ImportHouseholds", b"".join(r.SerializeToString(deterministic=True) for _, r in good))

        async def decide(tx: PostgresTransaction) -> bytes:
            known = await rm.existing_communities(tx.conn, sorted({r.community_id for _, r in good}))
            result = api.ImportHouseholdsResponse()
            appends, households, residents = [], [], []
            accepted = []
            for n, row in good:
                if row.community_id not in known:
                    result.rejected.add(row_number=n, field="community_id", reason=f"no community {row.community_id!r}")
                    continue
                accepted.append((n, _NewHousehold.of(derived_id(_IMPORT_NS, f"{request_id}#{n}"), row)))
            held = await self._claim_id_numbers(tx, [new for _, new in accepted])
            if held:  # a row naming a person registered already (or on an earlier row) is refused whole
                refused = [(n, new) for n, new in accepted if any(rid in held for rid in new.resident_ids)]
                for n, new in refused:
                    i, rid = next((i, rid) for i, rid in enumerate(new.resident_ids) if rid in held)
                    result.rejected.add(row_number=n, field=f"residents[{i}].id_number",
                                        reason=_already_registered(f"residents[{i}].id_number", held[rid]))
                await id_numbers.release(tx.conn, [rid for _, new in refused for rid in new.resident_ids
                                                   if rid not in held])
                refused_rows = {n for n, _ in refused}
                accepted = [(n, new) for n, new in accepted if n not in refused_rows]
            accepted = [new for _, new in accepted]
            keys = await self._new_keys(tx, accepted) if accepted else {}
            for new in accepted:
                a, h, rs = self._stage_household(keys, new)
                appends += a
                households.append(h)
                residents += rs
                result.household_ids.append(new.household_id)
            if appends:
                await tx.append_many(appends, _meta(who, cid, request_id))
                await rm.insert_households(tx.conn, households)
                if residents:
                    await rm.insert_residents(tx.conn, residents)
            result.households_imported, result.residents_imported = len(households), len(residents)
            return result.SerializeToString()

        done = api.ImportHouseholdsResponse.FromString(await execute(self.store, chunk_id, fp, decide))
        out.households_imported, out.residents_imported = done.households_imported, done.residents_imported
        out.household_ids.extend(done.household_ids)
        out.rejected.extend(done.rejected)
        return out

    # ---- queries ---------------------------------------------------------------------------

    def _open_resident(self, key: bytes | None, r: rm.ResidentRow) -> api.Resident:
        subject = stream("resident", r.resident_id)
        readable = key is not None and not r.erased

        def field(name: str, sealed: bytes) -> str:
            return unseal(key, subject, name, sealed) if readable else ERASED

        return api.Resident(resident_id=r.resident_id, household_id=r.household_id, community_id=r.community_id,
                            segment=r.segment, care_groups=r.care_groups, name=field("name", r.name_sealed),
                            phone=field("phone", r.phone_sealed), id_number=field("id_number", r.id_number_sealed),
                            erased=not readable)

    def _require_purpose(self, purpose: str) -> None:
        v = Violations()
        v.required("purpose", purpose, 300)
        v.raise_if_any()

    async def get_household(self, who: Principal, cid: str, req: api.GetHouseholdRequest) -> api.GetHouseholdResponse:
        self._require_purpose(req.purpose)
        async with self.store.pool.acquire() as conn, conn.transaction():
            h = await self._household_in_scope(conn, who, req.household_id)
            ring = PostgresKeyRing(conn, self.master_key)
            hsub = stream("household", h.household_id)
            hkey = await ring.key_for(hsub)
            out = api.Household(household_id=h.household_id, community_id=h.community_id, segments=h.segments,
                                care_groups=h.care_groups,
                                address=unseal(hkey, hsub, "address", h.address_sealed) if hkey else ERASED)
            await record_access(conn, actor=who.subject, actor_role=str(who.role), subject_id=hsub,
                                fields=["address"], purpose=req.purpose, correlation_id=cid)
            for r in await rm.residents_of(conn, h.household_id):
                out.residents.append(self._open_resident(await ring.key_for(stream("resident", r.resident_id)), r))
                await record_access(conn, actor=who.subject, actor_role=str(who.role),
                                    subject_id=stream("resident", r.resident_id), fields=["name", "phone", "id_number"],
                                    purpose=req.purpose, correlation_id=cid)
        return api.GetHouseholdResponse(household=out)

    async def get_resident(self, who: Principal, cid: str, req: api.GetResidentRequest) -> api.GetResidentResponse:
        self._require_purpose(req.purpose)
        async with self.store.pool.acquire() as conn, conn.transaction():
            r = await rm.resident(conn, req.resident_id)
            if r is None:
                raise NotFound(f"no resident {req.resident_id!r}")
            who.require_community(r.community_id)
            key = await PostgresKeyRing(conn, self.master_key).key_for(stream("resident", r.resident_id))
            await record_access(conn, actor=who.subject, actor_role=str(who.role),
                                subject_id=stream("resident", r.resident_id), fields=["name", "phone", "id_number"],
                                purpose=req.purpose, correlation_id=cid)
            return api.GetResidentResponse(resident=self._open_resident(key, r))

    async def _require_listed_community(self, community_id: str, rows: list, page_token: str) -> None:
        """An empty first page of a community never registered is a mistyped id, not an
        empty community: NOT_FOUND says which (asked only when nothing was listed)."""
        if not rows and not page_token and not await rm.community_exists(self.store.pool, community_id):
            raise NotFound(f"community_id: no community {community_id!r}")

    async def list_households(self, who: Principal, req: api.ListHouseholdsRequest) -> api.ListHouseholdsResponse:
        v = Violations()
        v.code("community_id", req.community_id)
        v.raise_if_any()
        who.require_community(req.community_id)
        limit = page_size(req.page_size)
        rows = await rm.list_households(self.store.pool, req.community_id, decode_page_token(req.page_token), limit)
        await self._require_listed_community(req.community_id, rows, req.page_token)
        out = api.ListHouseholdsResponse(households=[
            api.HouseholdSummary(household_id=h.household_id, community_id=h.community_id, segments=h.segments,
                                 care_groups=h.care_groups, residents=n) for h, n in rows])
        if len(rows) == limit:
            out.next_page_token = encode_page_token(rows[-1][0].household_id)
        return out

    async def list_communities(self, who: Principal, req: api.ListCommunitiesRequest) -> api.ListCommunitiesResponse:
        limit = page_size(req.page_size)
        # Names and kinds are the town's public map; a cadre's list is the communities they serve.
        only = sorted(who.communities) if who.role == Role.COMMUNITY_CADRE else None
        rows = await rm.list_communities(self.store.pool, decode_page_token(req.page_token), limit, only)
        out = api.ListCommunitiesResponse()
        for r in rows:
            c = out.communities.add(community_id=r["community_id"], name=r["name"], kind=r["kind"])
            c.registered_at.FromDatetime(r["registered_at"])
        if len(rows) == limit:
            out.next_page_token = encode_page_token(rows[-1]["community_id"])
        return out

    async def list_demands(self, who: Principal, req: api.ListDemandsRequest) -> api.ListDemandsResponse:
        v = Violations()
        v.code("community_id", req.community_id)
        v.raise_if_any()
        who.require_community(req.community_id)
        limit = page_size(req.page_size)
        rows = await rm.list_demands(self.store.pool, req.community_id, req.channel, decode_page_token(req.page_token), limit)
        await self._require_listed_community(req.community_id, rows, req.page_token)
        out = api.ListDemandsResponse()
        for r in rows:
            d = out.demands.add(demand_id=r["demand_id"], community_id=r["community_id"], household_id=r["household_id"],
                                resident_id=r["resident_id"], channel=r["channel"], urgency=r["urgency"],
                                category=r["category"], description=r["description"])
            d.raised_at.FromDatetime(r["raised_at"])
        if len(rows) == limit:
            out.next_page_token = encode_page_token(rows[-1]["demand_id"])
        return out


_IMPORT_NS = "6a1d3b0e-5f0c-4c1e-9a55-0e7d6b1f2c11"


