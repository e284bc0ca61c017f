"""The Case aggregate: a demand followed to an outcome. Commands check the rules and
return events; `apply` only changes state, so rebuilding from history re-checks nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from google.protobuf.message import Message

from ganshou.casework.v1 import casework_service_pb2 as api
from ganshou.casework.v1 import events_pb2 as ev
from ganshou.intake.v1 import events_pb2 as intake
from ganshou_casework.domain.promises import PromisePolicy
from ganshou_common.errors import FailedPrecondition, InvalidArgument

S = api.CaseStatus
OPEN_STATES = (S.CASE_STATUS_OPEN, S.CASE_STATUS_RESPONDED, S.CASE_STATUS_TRIAGED, S.CASE_STATUS_ASSIGNED)
WORKING = (S.CASE_STATUS_TRIAGED, S.CASE_STATUS_ASSIGNED)
DONE = (S.CASE_STATUS_RESOLVED, S.CASE_STATUS_EXPLAINED)
UNHAPPY = 2  # a rating at or below this lets the resident reopen the case
SATISFIED = 4  # a rating at or above this counts as satisfied


def _next_step(status: int, allowed: tuple[int, ...]) -> str:
    """What a case must go through first, told with a refusal (the lifecycle's common turns)."""
    if status == S.CASE_STATUS_OPEN and S.CASE_STATUS_RESPONDED not in allowed and set(allowed) & set(WORKING):
        return " (respond to it, then triage it to a track, first)"
    if status == S.CASE_STATUS_OPEN and S.CASE_STATUS_RESPONDED in allowed:
        return " (respond to it first)"
    if status == S.CASE_STATUS_RESPONDED and set(allowed) <= set(WORKING):
        return " (triage it to a track first: solve now, solve soon, long-term plan or explain)"
    if status in OPEN_STATES and tuple(allowed) == (S.CASE_STATUS_CLOSED,):
        return " (only a closed case is reopened: this one is still being worked)"
    if status in OPEN_STATES and set(allowed) <= {*DONE, S.CASE_STATUS_CLOSED}:
        return " (a case is rated and followed up once resolved or explained)"
    return ""


def ts(moment: datetime):
    from google.protobuf.timestamp_pb2 import Timestamp

    out = Timestamp()
    out.FromDatetime(moment)
    return out


def dt(stamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


@dataclass
class PromiseState:
    kind: int
    due_at: datetime
    state: str = "pending"  # pending | kept | broken | withdrawn


@dataclass
class Case:
    case_id: str = ""
    opened: ev.CaseOpened | None = None
    status: int = S.CASE_STATUS_UNSPECIFIED
    track: int = ev.TRACK_UNSPECIFIED
    assignee_kind: int = ev.ASSIGNEE_KIND_UNSPECIFIED
    assignee_id: str = ""
    partner_id: str = ""
    responded_at: datetime | None = None
    on_site_at: datetime | None = None
    promises: dict[int, PromiseState] = field(default_factory=dict)
    last_score: int = 0
    last_follow_up_fixed: bool | None = None
    contacts: int = 0
    primary_case_id: str = ""
    reopen_count: int = 0
    version: int = 0

    @property
    def community_id(self) -> str:
        return self.opened.community_id if self.opened else ""

    # ---- opening ---------------------------------------------------------------------------

    @staticmethod
    def open(case_id: str, demand: intake.DemandRaised, policy: PromisePolicy, opened_at: datetime) -> ev.CaseOpened:
        if not demand.demand_id or not demand.community_id:
            raise InvalidArgument.field("demand", "a demand needs its id and community")
        promises = [ev.Promise(kind=k, due_at=ts(due))
                    for k, due in policy.promises(demand.channel, demand.urgency, demand.category, opened_at)]
        return ev.CaseOpened(case_id=case_id, demand_id=demand.demand_id, community_id=demand.community_id,
                             household_id=demand.household_id, resident_id=demand.resident_id, channel=demand.channel,
                             urgency=demand.urgency, category=demand.category, description=demand.description,
                             segment=demand.segment, care_groups=demand.care_groups, opened_at=ts(opened_at),
                             promises=promises)

    # ---- rules -------------------------------------------------------------------------------

    def _require(self, allowed: tuple[int, ...], action: str) -> None:
        if self.status not in allowed:
            linked = f" (linked to {self.primary_case_id}: work on that case)" \
                if self.status == S.CASE_STATUS_LINKED else _next_step(self.status, allowed)
            raise FailedPrecondition(f"cannot {action} case {self.case_id}: it is {S.Name(self.status)}{linked}")

    def _meet(self, kind: int, at: datetime) -> list[Message]:
        p = self.promises.get(kind)
        if p is None or p.state != "pending":
            return []
        if at <= p.due_at:
            return [ev.PromiseKept(case_id=self.case_id, kind=kind, due_at=ts(p.due_at), met_at=ts(at))]
        return [ev.PromiseBroken(case_id=self.case_id, kind=kind, due_at=ts(p.due_at), detected_at=ts(at))]

    def overdue_promises(self, now: datetime) -> list[Message]:
        """What the timers record when a due time passes unmet."""
        return [ev.PromiseBroken(case_id=self.case_id, kind=p.kind, due_at=ts(p.due_at), detected_at=ts(now))
                for p in self.promises.values() if p.state == "pending" and p.due_at <= now]

    def respond(self, responder: str, note: str, now: datetime) -> list[Message]:
        self._require((S.CASE_STATUS_OPEN,), "respond to")
        return [ev.CaseResponded(case_id=self.case_id, responder=responder, responded_at=ts(now), note=note),
                *self._meet(ev.PROMISE_KIND_RESPONSE, now)]

    def triage(self, track: int, reason: str) -> list[Message]:
        self._require((S.CASE_STATUS_RESPONDED, *WORKING), "triage")
        return [ev.CaseTriaged(case_id=self.case_id, track=track, reason=reason)]

    def assign(self, kind: int, assignee_id: str, partner_id: str = "", offering_id: str = "") -> list[Message]:
        self._require(WORKING, "assign")
        return [ev.CaseAssigned(case_id=self.case_id, assignee_kind=kind, assignee_id=assignee_id,
                                partner_id=partner_id, offering_id=offering_id)]

    def arrive(self, by: str, now: datetime) -> list[Message]:
        self._require(OPEN_STATES, "record an arrival on")
        if self.on_site_at is not None:
            raise FailedPrecondition(f"someone is already on site for case {self.case_id}")
        out: list[Message] = []
        if self.status == S.CASE_STATUS_OPEN:  # arriving is the first response too
            out += self.respond(by, "on site", now)
        return out + [ev.OnSiteArrived(case_id=self.case_id, arrived_by=by, arrived_at=ts(now)),
                      *self._meet(ev.PROMISE_KIND_ON_SITE, now)]

    def note(self, author: str, text: str) -> list[Message]:
        if self.status == S.CASE_STATUS_LINKED:
            raise FailedPrecondition(f"case {self.case_id} is linked to {self.primary_case_id}: note it there")
        return [ev.CaseNoteAdded(case_id=self.case_id, author=author, text=text)]

    def resolve(self, summary: str, now: datetime) -> list[Message]:
        self._require(WORKING, "resolve")
        if self.track == ev.TRACK_EXPLAIN:
            raise FailedPrecondition(f"case {self.case_id} is on the explain track: explain it, or triage it again")
        return [ev.CaseResolved(case_id=self.case_id, summary=summary, resolved_at=ts(now))]

    def explain(self, explanation: str, now: datetime) -> list[Message]:
        self._require(WORKING, "explain")
        if self.track not in (ev.TRACK_EXPLAIN, ev.TRACK_LONG_TERM_PLAN):
            raise FailedPrecondition(f"case {self.case_id} is to be solved: explain only cases triaged to explain "
                                     "or long-term plan")
        return [ev.CaseExplained(case_id=self.case_id, explanation=explanation, explained_at=ts(now))]

    def rate(self, score: int, comment: str) -> list[Message]:
        self._require(DONE, "rate")
        return [ev.SatisfactionRated(case_id=self.case_id, score=score, comment=comment, satisfied=score >= SATISFIED),
                ev.CaseClosed(case_id=self.case_id)]

    def follow_up(self, really_fixed: bool, note: str) -> list[Message]:
        self._require((*DONE, S.CASE_STATUS_CLOSED), "follow up")
        out: list[Message] = [ev.FollowUpRecorded(case_id=self.case_id, really_fixed=really_fixed, note=note)]
        if not really_fixed:
            out.append(ev.CaseReopened(case_id=self.case_id, reason=note or "follow-up: not fixed", after_rating=False))
        return out

    def reopen(self, reason: str) -> list[Message]:
        self._require((S.CASE_STATUS_CLOSED,), "reopen")
        if not self.last_score or self.last_score > UNHAPPY:
            raise FailedPrecondition(f"case {self.case_id} was rated {self.last_score}: only an unhappy rating "
                                     f"(≤ {UNHAPPY}) reopens it; a follow-up can too")
        return [ev.CaseReopened(case_id=self.case_id, reason=reason, after_rating=True)]

    def link_to(self, primary: "Case") -> tuple[list[Message], list[Message]]:
        """(events for this case, events for the primary case)."""
        self._require((S.CASE_STATUS_OPEN, S.CASE_STATUS_RESPONDED), "link")
        if primary.case_id == self.case_id:
            raise InvalidArgument.field("primary_case_id", "a case cannot be linked to itself")
        if primary.status == S.CASE_STATUS_LINKED:
            raise FailedPrecondition(f"case {primary.case_id} is itself linked to {primary.primary_case_id}: "
                                     "link to that case instead")
        if primary.status not in OPEN_STATES:
            raise FailedPrecondition(f"case {primary.case_id} is not open: it is {S.Name(primary.status)}")
        if primary.community_id != self.community_id:
            raise InvalidArgument.field("primary_case_id", "the cases are in different communities")
        return ([ev.CaseLinked(case_id=self.case_id, primary_case_id=primary.case_id)],
                [ev.ContactAdded(case_id=primary.case_id, demand_id=self.opened.demand_id, channel=self.opened.channel,
                                 duplicate_case_id=self.case_id)])

    def request_partner_help(self, request_id: str, need: str, note: str) -> list[Message]:
        self._require(WORKING, "request partner help for")
        return [ev.PartnerHelpRequested(case_id=self.case_id, request_id=request_id, community_id=self.community_id,
                                        need_category=need, note=note)]

    def partner_left(self, partner_id: str, reason: str) -> list[Message]:
        """An open case of a partner that left goes back to its community to assign again."""
        if self.status not in OPEN_STATES or not self.partner_id or self.partner_id != partner_id:
            return []
        return [ev.CaseAssignmentEnded(case_id=self.case_id, partner_id=partner_id, reason=reason)]

    # ---- state -------------------------------------------------------------------------------

    def apply(self, e: Message) -> None:
        self.version += 1
        match e:
            case ev.CaseOpened():
                self.case_id, self.opened, self.status, self.contacts = e.case_id, e, S.CASE_STATUS_OPEN, 1
                self.promises = {p.kind: PromiseState(p.kind, dt(p.due_at)) for p in e.promises}
            case ev.CaseResponded():
                self.status, self.responded_at = S.CASE_STATUS_RESPONDED, dt(e.responded_at)
            case ev.CaseTriaged():
                self.status, self.track = (S.CASE_STATUS_ASSIGNED if self.status == S.CASE_STATUS_ASSIGNED
                                           else S.CASE_STATUS_TRIAGED), e.track
            case ev.CaseAssigned():
                self.status = S.CASE_STATUS_ASSIGNED
                self.assignee_kind, self.assignee_id, self.partner_id = e.assignee_kind, e.assignee_id, e.partner_id
            case ev.CaseAssignmentEnded():
                if self.status == S.CASE_STATUS_ASSIGNED:
                    self.status = S.CASE_STATUS_TRIAGED
                self.assignee_kind, self.assignee_id, self.partner_id = ev.ASSIGNEE_KIND_UNSPECIFIED, "", ""
            case ev.OnSiteArrived():
                self.on_site_at = dt(e.arrived_at)
            case ev.CaseResolved():
                self.status = S.CASE_STATUS_RESOLVED
            case ev.CaseExplained():
                self.status = S.CASE_STATUS_EXPLAINED
            case ev.SatisfactionRated():
                self.last_score = e.score
            case ev.FollowUpRecorded():
                self.last_follow_up_fixed = e.really_fixed
            case ev.CaseClosed():
                self.status = S.CASE_STATUS_CLOSED
            case ev.CaseReopened():
                # Back to work: it was responded to before, so it needs triage again.
                self.status, self.reopen_count, self.on_site_at = S.CASE_STATUS_RESPONDED, self.reopen_count + 1, None
            case ev.PromiseKept():
                self.promises[e.kind].state = "kept"
            case ev.PromiseBroken():
                self.promises[e.kind].state = "broken"
            case ev.CaseLinked():
                self.status, self.primary_case_id = S.CASE_STATUS_LINKED, e.primary_case_id
                for p in self.promises.values():
                    if p.state == "pending":
                        p.state = "withdrawn"  # the primary case carries the promises now
            case ev.ContactAdded():
                self.contacts += 1
            case _:
                pass  # notes, help requests and the like change nothing the rules look at

    @classmethod
    def rebuild(cls, events: list[Message]) -> "Case":
        case = cls()
        for e in events:
            case.apply(e)
        return case
