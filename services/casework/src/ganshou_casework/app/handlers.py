"""Casework's use cases: every case command loads the case, lets it decide, and saves the
events with the read models in one transaction, idempotently by request id. The event
reactions (demand → case, offering matched → partner assigned) and the promise timers live
here too; the request messages are the commands (see intake's handlers for why)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from google.protobuf import json_format
from google.protobuf.message import Message

from ganshou.casework.v1 import casework_service_pb2 as api
from ganshou.casework.v1 import events_pb2 as ev
from ganshou.common.v1 import envelope_pb2
from ganshou.intake.v1 import events_pb2 as intake
from ganshou.partner_resource.v1 import events_pb2 as partner
from ganshou_casework.adapters import cases as repo
from ganshou_casework.domain.case import OPEN_STATES, Case, PromiseState, ts
from ganshou_casework.domain.promises import PromisePolicy
from ganshou_common.codec import decode_payload, new_event, unpack
from ganshou_common.commands import execute, fingerprint
from ganshou_common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from ganshou_common.eventstore import NO_STREAM, Metadata, StreamAppend, StreamVersionConflict
from ganshou_common.eventstore.postgres import PostgresEventStore, PostgresTransaction
from ganshou_common.grpc_scaffold.auth import TOWN_WIDE, Principal, Role
from ganshou_common.ids import derived_id, new_id
from ganshou_common.validation import Violations, decode_page_token, encode_page_token, page_size

CASE_NS = "2f0c1a57-8d7e-4f4e-9a0b-3c5d6e7f8a90"
Decision = Callable[[Case, datetime], list[Message]]


def case_id_for(demand_id: str) -> str:
    """One demand, one case: the case id is derived from the demand id."""
    return derived_id(CASE_NS, demand_id)


def _newest_first_after(token: str) -> tuple[datetime | None, str]:
    """Where a page of cases, newest first, starts after: the last case's opened_at and id."""
    if not token:
        return None, ""
    at, _, case_id = decode_page_token(token).partition("|")
    try:
        return datetime.fromisoformat(at), case_id
    except ValueError:
        raise InvalidArgument.field("page_token", "not a token from a previous page") from None


def _fp(req) -> str:
    return fingerprint(req.DESCRIPTOR.full_name, req.SerializeToString(deterministic=True))


def _meta(who: Principal | None, cid: str, cause: str) -> Metadata:
    return Metadata(cid, cause, who.subject if who else "casework", str(who.role) if who else "system")


def _now() -> datetime:
    return datetime.now(UTC)


def _promise_view(p: PromiseState) -> api.PromiseState:
    return api.PromiseState(kind=p.kind, due_at=ts(p.due_at), state=p.state)


def case_view(case: Case, history: list | None = None) -> api.Case:
    o = case.opened
    out = api.Case(case_id=case.case_id, demand_id=o.demand_id, community_id=o.community_id, household_id=o.household_id,
                   resident_id=o.resident_id, channel=o.channel, urgency=o.urgency, category=o.category,
                   description=o.description, segment=o.segment, status=case.status, track=case.track,
                   assignee_kind=case.assignee_kind, assignee_id=case.assignee_id, partner_id=case.partner_id,
                   opened_at=o.opened_at, promises=[_promise_view(p) for p in case.promises.values()],
                   last_score=case.last_score, contacts=case.contacts, primary_case_id=case.primary_case_id,
                   reopen_count=case.reopen_count, version=case.version)
    if case.responded_at:
        out.responded_at.CopyFrom(ts(case.responded_at))
    if case.on_site_at:
        out.on_site_at.CopyFrom(ts(case.on_site_at))
    for s in history or []:
        entry = out.history.add(version=s.version, event_type=s.event_type, actor=s.metadata.actor_subject,
                                detail=json_format.MessageToJson(decode_payload(s.event_type, s.payload), indent=None,
                                                                  ensure_ascii=False))
        entry.recorded_at.FromDatetime(s.recorded_at)
    return out


def _check_access(who: Principal, case: Case, partner_may: bool) -> None:
    if who.role == Role.PARTNER_STAFF:
        if not partner_may or not case.partner_id or case.partner_id != who.partner_id:
            raise PermissionDenied("partner staff may only work cases assigned to their partner")
        return
    who.require_community(case.community_id)


async def _lock_partner(tx: PostgresTransaction, partner_id: str) -> None:
    """A match for a partner and the partner leaving, handled by two consumers at once, would
    each miss the other's uncommitted write: taken in turn, the later one sees the earlier."""
    await tx.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('casework-partner:' || $1, 0))", partner_id)


async def _check_partner(tx: PostgresTransaction, partner_id: str) -> None:
    """A case waits on its partner: one casework has not heard of, or that has left, would keep
    it waiting on nobody. Under the partner's lock, so the partner leaving meanwhile waits for
    this command and then hands the case back."""
    await _lock_partner(tx, partner_id)
    row = await tx.conn.fetchrow("SELECT name, left_at FROM known_partners WHERE partner_id = $1", partner_id)
    if row is None:
        raise InvalidArgument.field("assignee_id", f"no partner {partner_id!r} (one registered moments ago is "
                                                   "known to casework within seconds: try again then)")
    if row["left_at"] is not None:
        raise InvalidArgument.field("assignee_id", f"partner {partner_id} ({row['name']}) has left the "
                                                   f"partnership on {row['left_at']:%Y-%m-%d}")


@dataclass
class CaseworkApp:
    store: PostgresEventStore
    policy: PromisePolicy

    # ---- case commands -------------------------------------------------------------------

    async def _case_command(self, who: Principal, cid: str, req, decide: Decision, *,
                            partner_may: bool = False, check=None) -> api.Case:
        v = Violations()
        v.required("case_id", req.case_id, 64)
        v.raise_if_any()

        async def run(tx: PostgresTransaction) -> bytes:
            if check is not None:  # in the command's transaction, before the case is read
                await check(tx)
            case = await repo.load(tx, req.case_id)
            _check_access(who, case, partner_may)
            await repo.save(tx, case, decide(case, _now()), _meta(who, cid, req.request_id))
            return case_view(case).SerializeToString()

        return api.Case.FromString(await execute(self.store, req.request_id, _fp(req), run))

    async def respond(self, who, cid, req: api.RespondToCaseRequest) -> api.Case:
        return await self._case_command(who, cid, req, lambda c, now: c.respond(who.subject, req.note, now))

    async def triage(self, who, cid, req: api.TriageCaseRequest) -> api.Case:
        v = Violations()
        v.enum("track", req.track, ev.Track)
        v.optional_text("reason", req.reason)
        v.raise_if_any()
        return await self._case_command(who, cid, req, lambda c, now: c.triage(req.track, req.reason))

    async def assign(self, who, cid, req: api.AssignCaseRequest) -> api.Case:
        v = Violations()
        v.required("case_id", req.case_id, 64)  # with the assignee's, before looking the assignee up
        v.enum("assignee_kind", req.assignee_kind, ev.AssigneeKind)
        v.required("assignee_id", req.assignee_id, 64)
        v.raise_if_any()
        if req.assignee_kind == ev.ASSIGNEE_KIND_RESPONSIBILITY_POST:
            post = await self.store.pool.fetchrow("SELECT community_id FROM posts WHERE post_id = $1", req.assignee_id)
            if post is None:
                raise InvalidArgument.field("assignee_id", f"no responsibility post {req.assignee_id!r}")
        partner_id = req.assignee_id if req.assignee_kind == ev.ASSIGNEE_KIND_PARTNER else ""
        return await self._case_command(who, cid, req,
                                        lambda c, now: c.assign(req.assignee_kind, req.assignee_id, partner_id),
                                        check=(lambda tx: _check_partner(tx, partner_id)) if partner_id else None)

    async def arrive(self, who, cid, req: api.RecordOnSiteArrivalRequest) -> api.Case:
        return await self._case_command(who, cid, req, lambda c, now: c.arrive(who.subject, now), partner_may=True)

    async def note(self, who, cid, req: api.AddCaseNoteRequest) -> api.Case:
        v = Violations()
        v.required("text", req.text, 4000)
        v.raise_if_any()
        return await self._case_command(who, cid, req, lambda c, now: c.note(who.subject, req.text), partner_may=True)

    async def resolve(self, who, cid, req: api.ResolveCaseRequest) -> api.Case:
        v = Violations()
        v.required("summary", req.summary, 4000)
        v.raise_if_any()
        return await self._case_command(who, cid, req, lambda c, now: c.resolve(req.summary, now), partner_may=True)

    async def explain(self, who, cid, req: api.ExplainCaseRequest) -> api.Case:
        v = Violations()
        v.required("explanation", req.explanation, 4000)
        v.raise_if_any()
        return await self._case_command(who, cid, req, lambda c, now: c.explain(req.explanation, now))

    async def rate(self, who, cid, req: api.RateSatisfactionRequest) -> api.Case:
        v = Violations()
        if not 1 <= req.score <= 5:
            v.add("score", "a felt rating from 1 (very unhappy) to 5 (very satisfied)")
        v.optional_text("comment", req.comment)
        v.raise_if_any()
        return await self._case_command(who, cid, req, lambda c, now: c.rate(req.score, req.comment))

    async def follow_up(self, who, cid, req: api.RecordFollowUpRequest) -> api.Case:
        return await self._case_command(who, cid, req, lambda c, now: c.follow_up(req.really_fixed, req.note))

    async def reopen(self, who, cid, req: api.ReopenCaseRequest) -> api.Case:
        v = Violations()
        v.required("reason", req.reason, 2000)
        v.raise_if_any()
        return await self._case_command(who, cid, req, lambda c, now: c.reopen(req.reason))

    async def request_partner_help(self, who, cid, req: api.RequestPartnerHelpRequest) -> api.Case:
        v = Violations()
        v.required("need_category", req.need_category, 100)
        v.raise_if_any()
        return await self._case_command(
            who, cid, req, lambda c, now: c.request_partner_help(req.request_id, req.need_category, req.note))

    async def link(self, who, cid, req: api.LinkCaseRequest) -> api.Case:
        v = Violations()
        v.required("case_id", req.case_id, 64)
        v.required("primary_case_id", req.primary_case_id, 64)
        v.raise_if_any()

        async def run(tx: PostgresTransaction) -> bytes:
            dup = await repo.load(tx, req.case_id)
            try:
                primary = await repo.load(tx, req.primary_case_id)
            except NotFound:
                raise InvalidArgument.field("primary_case_id", f"no case {req.primary_case_id!r}") from None
            _check_access(who, dup, False)
            _check_access(who, primary, False)
            mine, theirs = dup.link_to(primary)
            meta = _meta(who, cid, req.request_id)
            await repo.save(tx, dup, mine, meta)
            await repo.save(tx, primary, theirs, meta)
            return case_view(primary).SerializeToString()

        return api.Case.FromString(await execute(self.store, req.request_id, _fp(req), run))

    # ---- queries ---------------------------------------------------------------------------

    async def get_case(self, who: Principal, req: api.GetCaseRequest) -> api.Case:
        if req.case_id and req.demand_id:
            raise InvalidArgument.field("demand_id", "give case_id or demand_id, not both")
        if not (req.case_id or req.demand_id):
            raise InvalidArgument.field("case_id", "required (or demand_id: the demand the case follows)")
        case_id = req.case_id or case_id_for(req.demand_id)
        async with self.store.transaction() as tx:
            stored = await repo.load_events(tx, case_id)
        if not stored:
            raise NotFound(f"no case {req.case_id!r}" if req.case_id else
                           f"no case for demand {req.demand_id!r} (yet: casework opens it moments after the demand)")
        case = Case.rebuild([decode_payload(s.event_type, s.payload) for s in stored])
        _check_access(who, case, partner_may=True)
        return case_view(case, stored)

    async def list_cases(self, who: Principal, req: api.ListCasesRequest) -> api.ListCasesResponse:
        partner_id = req.partner_id
        if who.role == Role.PARTNER_STAFF:  # their partner's cases, and only those
            if not who.partner_id or partner_id not in ("", who.partner_id):
                raise PermissionDenied(f"partner staff list their own partner's cases only (asked: {partner_id!r})")
            partner_id = who.partner_id
        v = Violations()
        town_wide = who.role in TOWN_WIDE  # no community named: every community's cases
        if req.community_id or not (partner_id or town_wide):
            v.code("community_id", req.community_id)
        elif not town_wide and who.role != Role.PARTNER_STAFF:
            v.add("community_id", "required: a community you serve (a partner's cases in every community are "
                                  "listed by the town's admins, auditors and hotline operators)")
        if partner_id:
            v.required("partner_id", partner_id, 64)
        v.raise_if_any()
        if req.community_id and who.role != Role.PARTNER_STAFF:
            who.require_community(req.community_id)
        limit = page_size(req.page_size)
        after_at, after_id = _newest_first_after(req.page_token)
        # The filters given, and only those, in the statement: each shape keeps a plan on its index.
        args: list = []

        def arg(value) -> str:
            args.append(value)
            return f"${len(args)}"

        where = [f"c.community_id = {arg(req.community_id)}"] if req.community_id else []
        where += [f"c.partner_id = {arg(partner_id)}"] if partner_id else []
        where += [f"c.status = {arg(req.status)}"] if req.status else []
        where += [f"c.track = {arg(req.track)}"] if req.track else []
        if req.overdue_only:
            where.append("(c.broken_promises > 0 OR EXISTS (SELECT 1 FROM promise_timers t WHERE t.case_id = c.case_id "
                         "AND t.state = 'pending' AND t.due_at < now()))")
        if after_at is not None:
            where.append(f"(c.opened_at, c.case_id) < ({arg(after_at)}, {arg(after_id)})")
        condition = " AND ".join(where) or "TRUE"  # none: the whole town's
        rows = await self.store.pool.fetch(f"SELECT c.case_id, c.opened_at FROM cases c WHERE {condition} "
                                           f"ORDER BY c.opened_at DESC, c.case_id DESC LIMIT {arg(limit)}", *args)
        out = api.ListCasesResponse()
        async with self.store.transaction() as tx:
            for r in rows:
                out.cases.append(case_view(await repo.load(tx, r["case_id"])))
        if len(rows) == limit:
            out.next_page_token = encode_page_token(f"{rows[-1]['opened_at'].isoformat()}|{rows[-1]['case_id']}")
        return out

    # ---- reactions to other services' events ----------------------------------------------

    async def on_demand_raised(self, tx: PostgresTransaction, env: envelope_pb2.EventEnvelope) -> None:
        demand = unpack(env, intake.DemandRaised)
        case_id = case_id_for(demand.demand_id)
        if await tx.stream_version(repo.case_stream(case_id)):
            return  # already opened (e.g. the consumer's checkpoint was reset)
        opened = Case.open(case_id, demand, self.policy, demand.raised_at.ToDatetime(tzinfo=UTC)
                           if demand.HasField("raised_at") else _now())
        await repo.save(tx, Case(), [opened], Metadata(env.correlation_id, env.event_id, "casework", "system"))

    async def on_household_registered(self, tx: PostgresTransaction, env: envelope_pb2.EventEnvelope) -> None:
        h = unpack(env, intake.HouseholdRegistered)
        await tx.conn.execute("INSERT INTO known_households VALUES ($1, $2) ON CONFLICT DO NOTHING",
                              h.household_id, h.community_id)

    async def on_offering_matched(self, tx: PostgresTransaction, env: envelope_pb2.EventEnvelope) -> None:
        m = unpack(env, partner.OfferingMatched)
        case = await repo.load(tx, m.case_id)
        if case.status not in (api.CASE_STATUS_TRIAGED, api.CASE_STATUS_ASSIGNED):
            return  # the case moved on (resolved meanwhile): nothing to assign
        await _lock_partner(tx, m.partner_id)
        if await tx.conn.fetchval("SELECT left_at IS NOT NULL FROM known_partners WHERE partner_id = $1",
                                  m.partner_id):
            # Matched just before the partner left (its offerings are withdrawn as it leaves).
            await repo.save(tx, case, [ev.PartnerHelpUnavailable(
                case_id=m.case_id, request_id=m.request_id, reason=f"partner {m.partner_id} has left the partnership")],
                Metadata(env.correlation_id, env.event_id, "casework", "system"))
            return
        await repo.save(tx, case, case.assign(ev.ASSIGNEE_KIND_PARTNER, m.partner_id, m.partner_id, m.offering_id),
                        Metadata(env.correlation_id, env.event_id, "casework", "system"))

    async def on_no_offering(self, tx: PostgresTransaction, env: envelope_pb2.EventEnvelope) -> None:
        m = unpack(env, partner.NoOfferingAvailable)
        case = await repo.load(tx, m.case_id)
        await repo.save(tx, case, [ev.PartnerHelpUnavailable(case_id=m.case_id, request_id=m.request_id, reason=m.reason)],
                        Metadata(env.correlation_id, env.event_id, "casework", "system"))

    async def on_partner_registered(self, tx: PostgresTransaction, env: envelope_pb2.EventEnvelope) -> None:
        p = unpack(env, partner.PartnerRegistered)
        await tx.conn.execute("INSERT INTO known_partners (partner_id, name) VALUES ($1, $2) "
                              "ON CONFLICT (partner_id) DO UPDATE SET name = excluded.name", p.partner_id, p.name)

    async def on_partner_left(self, tx: PostgresTransaction, env: envelope_pb2.EventEnvelope) -> None:
        p = unpack(env, partner.PartnerLeft)
        at = env.occurred_at.ToDatetime(tzinfo=UTC) if env.HasField("occurred_at") else _now()
        await _lock_partner(tx, p.partner_id)
        await tx.conn.execute("UPDATE known_partners SET left_at = $2 WHERE partner_id = $1", p.partner_id, at)
        # Its open cases would wait on nobody: back to their communities, to assign again.
        reason = f"partner {p.partner_id} left the partnership" + (f": {p.reason}" if p.reason else "")
        meta = Metadata(env.correlation_id, env.event_id, "casework", "system")
        for row in await tx.conn.fetch("SELECT case_id FROM cases WHERE partner_id = $1 AND status = ANY($2)",
                                       p.partner_id, list(OPEN_STATES)):
            case = await repo.load(tx, row["case_id"])
            await repo.save(tx, case, case.partner_left(p.partner_id, reason), meta)

    def partner_reactions(self) -> dict[str, Callable]:
        """The known-partners read model's, fed by a consumer of its own (see build_partner_consumer)."""
        return {
            partner.PartnerRegistered.DESCRIPTOR.full_name: self.on_partner_registered,
            partner.PartnerLeft.DESCRIPTOR.full_name: self.on_partner_left,
        }

    def reactions(self) -> dict[str, Callable]:
        return {
            intake.DemandRaised.DESCRIPTOR.full_name: self.on_demand_raised,
            intake.HouseholdRegistered.DESCRIPTOR.full_name: self.on_household_registered,
            partner.OfferingMatched.DESCRIPTOR.full_name: self.on_offering_matched,
            partner.NoOfferingAvailable.DESCRIPTOR.full_name: self.on_no_offering,
        }

    # ---- promise timers ----------------------------------------------------------------------

    async def fire_due_timers(self, now: datetime | None = None, limit: int = 100) -> int:
        """Record PromiseBroken for every pending promise past due; returns how many cases."""
        now = now or _now()
        fired = 0
        async with self.store.pool.acquire() as conn:
            due = await conn.fetch("SELECT DISTINCT case_id FROM promise_timers WHERE state = 'pending' AND due_at <= $1 "
                                   "LIMIT $2", now, limit)
        for row in due:
            try:
                async with self.store.transaction() as tx:
                    case = await repo.load(tx, row["case_id"])
                    events = case.overdue_promises(now)
                    await repo.save(tx, case, events, Metadata("", "promise-timer", "casework", "system"))
                fired += 1
            except (StreamVersionConflict, FailedPrecondition):
                continue  # a command on the case won the race; the next tick looks again
        return fired

    # ---- deliberations, appraisals, posts ----------------------------------------------------

    async def open_deliberation(self, who, cid, req: api.OpenDeliberationRequest) -> api.OpenDeliberationResponse:
        v = Violations()
        v.code("community_id", req.community_id)
        v.required("topic", req.topic, 500)
        v.raise_if_any()
        who.require_community(req.community_id)

        async def run(tx: PostgresTransaction) -> bytes:
            if req.household_ids:
                rows = await tx.conn.fetch("SELECT household_id FROM known_households WHERE community_id = $1 "
                                           "AND household_id = ANY($2)", req.community_id, list(req.household_ids))
                found = {r[0] for r in rows}
                missing = [h for h in req.household_ids if h not in found]
                if missing:
                    raise InvalidArgument.field("household_ids", f"not households of {req.community_id}: {missing[:5]}")
                eligible = sorted(found)
            else:
                eligible = [r[0] for r in await tx.conn.fetch(
                    "SELECT household_id FROM known_households WHERE community_id = $1", req.community_id)]
            if not eligible:
                raise FailedPrecondition(f"no households known in {req.community_id} to deliberate")
            did = new_id()
            e = ev.DeliberationOpened(deliberation_id=did, community_id=req.community_id, topic=req.topic,
                                      hearing=req.hearing, household_ids=eligible, households_eligible=len(eligible))
            await tx.append(StreamAppend(f"deliberation-{did}", "deliberation", NO_STREAM,
                                         [new_event(e, req.community_id)]), _meta(who, cid, req.request_id))
            await tx.conn.execute("INSERT INTO deliberations (deliberation_id, community_id, topic, eligible) "
                                  "VALUES ($1, $2, $3, $4)", did, req.community_id, req.topic, len(eligible))
            await tx.conn.execute("INSERT INTO deliberation_households SELECT $1, unnest($2::text[])", did, eligible)
            return api.OpenDeliberationResponse(deliberation_id=did, households_eligible=len(eligible)).SerializeToString()

        return api.OpenDeliberationResponse.FromString(await execute(self.store, req.request_id, _fp(req), run))

    async def _deliberation(self, conn, who: Principal, did: str) -> asyncpg.Record:
        d = await conn.fetchrow("SELECT * FROM deliberations WHERE deliberation_id = $1", did)
        if d is None:
            raise NotFound(f"no deliberation {did!r}")
        who.require_community(d["community_id"])
        return d

    async def cast_vote(self, who, cid, req: api.CastVoteRequest) -> api.CastVoteResponse:
        """One household, one vote: a second vote from a household is refused (ALREADY_EXISTS),
        like a ballot already in the box; the first stands."""
        v = Violations()
        v.required("deliberation_id", req.deliberation_id, 64)
        v.required("household_id", req.household_id, 64)
        v.enum("choice", req.choice, ev.VoteChoice)
        v.raise_if_any()

        async def run(tx: PostgresTransaction) -> bytes:
            d = await self._deliberation(tx.conn, who, req.deliberation_id)
            if d["decided"]:
                raise FailedPrecondition(f"deliberation {req.deliberation_id} is decided: voting is closed")
            if not await tx.conn.fetchval("SELECT 1 FROM deliberation_households WHERE deliberation_id = $1 "
                                          "AND household_id = $2", req.deliberation_id, req.household_id):
                raise InvalidArgument.field("household_id", "this household is not eligible in this deliberation")
            done = await tx.conn.execute("INSERT INTO votes VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                                         req.deliberation_id, req.household_id, req.choice)
            if done.endswith(" 0"):
                raise AlreadyExists(f"household {req.household_id} has already voted: one household, one vote")
            e = ev.HouseholdVoted(deliberation_id=req.deliberation_id, household_id=req.household_id, choice=req.choice)
            await tx.append(StreamAppend(f"vote-{req.deliberation_id}-{req.household_id}", "vote", NO_STREAM,
                                         [new_event(e, d["community_id"])]), _meta(who, cid, req.request_id))
            return api.CastVoteResponse().SerializeToString()

        return api.CastVoteResponse.FromString(await execute(self.store, req.request_id, _fp(req), run))

    async def _tally(self, conn, did: str) -> dict[int, int]:
        rows = await conn.fetch("SELECT choice, count(*) FROM votes WHERE deliberation_id = $1 GROUP BY choice", did)
        return {r[0]: r[1] for r in rows}

    async def decide(self, who, cid, req: api.DecideDeliberationRequest) -> api.DecideDeliberationResponse:
        v = Violations()
        v.required("deliberation_id", req.deliberation_id, 64)
        v.required("decision", req.decision, 2000)
        v.raise_if_any()

        async def run(tx: PostgresTransaction) -> bytes:
            d = await self._deliberation(tx.conn, who, req.deliberation_id)
            if d["decided"]:
                raise FailedPrecondition(f"deliberation {req.deliberation_id} is already decided")
            tally = await self._tally(tx.conn, req.deliberation_id)
            out = api.DecideDeliberationResponse(votes_for=tally.get(ev.VOTE_CHOICE_FOR, 0),
                                                 votes_against=tally.get(ev.VOTE_CHOICE_AGAINST, 0),
                                                 votes_abstain=tally.get(ev.VOTE_CHOICE_ABSTAIN, 0),
                                                 households_eligible=d["eligible"])
            e = ev.DeliberationDecided(deliberation_id=req.deliberation_id, decision=req.decision,
                                       votes_for=out.votes_for, votes_against=out.votes_against,
                                       votes_abstain=out.votes_abstain, households_eligible=d["eligible"])
            await tx.append(StreamAppend(f"deliberation-{req.deliberation_id}", "deliberation", 1,
                                         [new_event(e, d["community_id"])]), _meta(who, cid, req.request_id))
            await tx.conn.execute("UPDATE deliberations SET decided = true, decision = $2 WHERE deliberation_id = $1",
                                  req.deliberation_id, req.decision)
            return out.SerializeToString()

        return api.DecideDeliberationResponse.FromString(await execute(self.store, req.request_id, _fp(req), run))

    async def get_deliberation(self, who, did: str) -> api.GetDeliberationResponse:
        if not did:
            raise InvalidArgument.field("deliberation_id", "required")
        async with self.store.pool.acquire() as conn:
            d = await self._deliberation(conn, who, did)
            tally = await self._tally(conn, did)
        return api.GetDeliberationResponse(
            deliberation_id=did, community_id=d["community_id"], topic=d["topic"], decided=d["decided"],
            decision=d["decision"], households_eligible=d["eligible"], votes_for=tally.get(ev.VOTE_CHOICE_FOR, 0),
            votes_against=tally.get(ev.VOTE_CHOICE_AGAINST, 0), votes_abstain=tally.get(ev.VOTE_CHOICE_ABSTAIN, 0))

    async def record_appraisal(self, who, cid, req: api.RecordAppraisalRequest) -> api.RecordAppraisalResponse:
        v = Violations()
        v.code("community_id", req.community_id)
        v.half_year("period", req.period, datetime.now(UTC))  # 民主评议: every half year
        v.required("subject", req.subject, 100)
        v.required("representative_id", req.representative_id, 64)
        if not 0 <= req.score <= 100:
            v.add("score", "from 0 to 100")
        v.raise_if_any()
        who.require_community(req.community_id)

        async def run(tx: PostgresTransaction) -> bytes:
            aid = new_id()
            done = await tx.conn.execute(
                "INSERT INTO appraisals VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING", aid, req.community_id,
                req.period, req.subject, req.representative_id, req.score)
            if done.endswith(" 0"):
                raise AlreadyExists(f"{req.representative_id} has already appraised {req.subject} for {req.period}")
            e = ev.AppraisalRecorded(appraisal_id=aid, community_id=req.community_id, period=req.period,
                                     subject=req.subject, representative_id=req.representative_id, score=req.score)
            await tx.append(StreamAppend(f"appraisal-{aid}", "appraisal", NO_STREAM, [new_event(e, req.community_id)]),
                            _meta(who, cid, req.request_id))
            return api.RecordAppraisalResponse(appraisal_id=aid).SerializeToString()

        return api.RecordAppraisalResponse.FromString(await execute(self.store, req.request_id, _fp(req), run))

    async def establish_post(self, who, cid, req: api.EstablishPostRequest) -> api.EstablishPostResponse:
        v = Violations()
        v.code("community_id", req.community_id)
        v.enum("kind", req.kind, ev.PostKind)
        v.required("holder", req.holder, 100)
        v.optional_text("title", req.title, 200)
        v.raise_if_any()
        who.require_community(req.community_id)

        async def run(tx: PostgresTransaction) -> bytes:
            pid = new_id()
            e = ev.ResponsibilityPostEstablished(post_id=pid, community_id=req.community_id, kind=req.kind,
                                                 holder=req.holder, title=req.title)
            await tx.append(StreamAppend(f"post-{pid}", "post", NO_STREAM, [new_event(e, req.community_id)]),
                            _meta(who, cid, req.request_id))
            await tx.conn.execute("INSERT INTO posts VALUES ($1, $2, $3, $4, $5)", pid, req.community_id, req.kind,
                                  req.holder, req.title)
            return api.EstablishPostResponse(post_id=pid).SerializeToString()

        return api.EstablishPostResponse.FromString(await execute(self.store, req.request_id, _fp(req), run))

    async def list_posts(self, who, req: api.ListPostsRequest) -> api.ListPostsResponse:
        v = Violations()
        v.code("community_id", req.community_id)
        v.raise_if_any()
        who.require_community(req.community_id)
        limit = page_size(req.page_size)
        rows = await self.store.pool.fetch("SELECT * FROM posts WHERE community_id = $1 AND post_id > $2 "
                                           "ORDER BY post_id LIMIT $3", req.community_id,
                                           decode_page_token(req.page_token), limit)
        out = api.ListPostsResponse(posts=[api.Post(post_id=r["post_id"], community_id=r["community_id"], kind=r["kind"],
                                                    holder=r["holder"], title=r["title"]) for r in rows])
        if len(rows) == limit:
            out.next_page_token = encode_page_token(rows[-1]["post_id"])
        return out
