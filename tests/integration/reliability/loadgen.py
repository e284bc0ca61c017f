"""A load generator that behaves like the town's client apps: a realistic mix of commands
through the public gRPC APIs (visits, demands and hotline calls, every step of a case,
ratings, votes, deliveries, aid) at a chosen rate. Every command carries a request id and
a deadline; UNAVAILABLE, DEADLINE_EXCEEDED (and CANCELLED, which a server's graceful stop
can give a call racing it) are retried with the same request id, as the API promises that
is safe. The ledger keeps what was acknowledged, for the checks."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ganshou.casework.v1 import casework_service_pb2 as capi
from ganshou.casework.v1 import casework_service_pb2_grpc as casework_rpc
from ganshou.casework.v1 import events_pb2 as cev
from ganshou.common.v1 import types_pb2 as t
from ganshou.intake.v1 import events_pb2 as iev
from ganshou.intake.v1 import intake_service_pb2 as iapi
from ganshou.intake.v1 import intake_service_pb2_grpc as intake_rpc
from ganshou.partner_resource.v1 import events_pb2 as pev
from ganshou.partner_resource.v1 import partner_resource_service_pb2 as papi
from ganshou.partner_resource.v1 import partner_resource_service_pb2_grpc as partner_rpc
from ganshou_casework.app.handlers import case_id_for
from ganshou_common.validation import MAX_COUNT

# CANCELLED too: a call that races a server's graceful stop (its GOAWAY) is cancelled by the
# transport, not refused by the service; the same request id makes the retry safe.
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED})
# Reconnect quickly after a server restarts: the defaults back off up to two minutes.
CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                   ("grpc.max_reconnect_backoff_ms", 1000)]
SERVICES = {"intake": intake_rpc.IntakeServiceStub, "casework": casework_rpc.CaseworkServiceStub,
            "partner": partner_rpc.PartnerResourceServiceStub}


def rid() -> str:
    return uuid.uuid4().hex


def id_number(rng: random.Random) -> str:
    """A valid resident id number (GB 11643 check character)."""
    body = f"{rng.randint(110000, 659000)}19{rng.randint(40, 99)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}" \
           f"{rng.randint(0, 999):03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights)) % 11]


@dataclass
class Ledger:
    """What the client saw: acknowledged commands (by service), retries, refusals."""
    acked: dict[str, set[str]] = field(default_factory=lambda: {s: set() for s in SERVICES})
    by_rpc: Counter = field(default_factory=Counter)
    retried: Counter = field(default_factory=Counter)
    refused: list[tuple[str, str, str]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    personal: list[str] = field(default_factory=list)  # plaintext personal values sent, for the scans
    sent: int = 0

    def summary(self) -> dict:
        return {"sent": self.sent, "acknowledged": sum(len(v) for v in self.acked.values()),
                "retried_attempts": dict((k.name, v) for k, v in self.retried.items()),
                "refused": len(self.refused), "by_rpc": dict(self.by_rpc)}


class Client:
    """One caller of the three command services, retrying as a well-behaved app does."""

    def __init__(self, ports: dict[str, int], metadata, ledger: Ledger, deadline_s: float = 5.0,
                 give_up_s: float = 180.0):
        self.channels = {s: grpc.aio.insecure_channel(f"127.0.0.1:{p}", options=CHANNEL_OPTIONS)
                         for s, p in ports.items()}
        self.stubs = {s: SERVICES[s](ch) for s, ch in self.channels.items()}
        self.metadata, self.ledger = metadata, ledger
        self.deadline_s, self.give_up_s = deadline_s, give_up_s

    async def close(self) -> None:
        for ch in self.channels.values():
            await ch.close()

    async def call(self, service: str, rpc: str, request, command: bool = True):
        """The reply, retried through outages; None when refused (recorded in the ledger)."""
        method = getattr(self.stubs[service], rpc)
        started = time.monotonic()
        delay = 0.1
        if command:
            self.ledger.sent += 1
        while True:
            try:
                reply = await method(request, metadata=self.metadata, timeout=self.deadline_s)
            except grpc.aio.AioRpcError as exc:
                if exc.code() in RETRYABLE and time.monotonic() - started < self.give_up_s:
                    self.ledger.retried[exc.code()] += 1
                    await asyncio.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, 2.0)
                    continue
                if command:
                    self.ledger.refused.append((rpc, exc.code().name, exc.details() or ""))
                return None
            if command:
                self.ledger.acked[service].add(request.request_id)
                self.ledger.by_rpc[rpc] += 1
                self.ledger.latencies.append(time.monotonic() - started)
            return reply

    async def until(self, service: str, rpc: str, request, timeout: float = 60.0):
        """A set-up step that depends on another service having caught up: retried (same
        request id) while it is refused for not knowing an entity yet."""
        method = getattr(self.stubs[service], rpc)
        async with asyncio.timeout(timeout):
            while True:
                try:
                    reply = await method(request, metadata=self.metadata, timeout=self.deadline_s)
                    if "request_id" in request.DESCRIPTOR.fields_by_name:
                        self.ledger.acked[service].add(request.request_id)
                        self.ledger.by_rpc[rpc] += 1
                        self.ledger.sent += 1
                    return reply
                except grpc.aio.AioRpcError as exc:
                    if exc.code() not in RETRYABLE | {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION,
                                                       grpc.StatusCode.INVALID_ARGUMENT}:
                        raise
                await asyncio.sleep(0.3)


@dataclass
class Community:
    id: str
    campaign: str = ""
    households: list[tuple[str, str]] = field(default_factory=list)  # (household, resident)
    deliberation: str = ""
    voters: list[str] = field(default_factory=list)


@dataclass
class Town:
    communities: list[Community]
    partner: str = ""
    offering: str = ""
    programme: str = ""
    offerings: list[str] = field(default_factory=list)
    programmes: list[str] = field(default_factory=list)


@dataclass
class CaseInPlay:
    case_id: str
    emergency: bool
    step: str = "respond"
    ratings: int = 0


class Mix:
    """The commands of a town's day, weighted roughly as the article describes its work."""

    WEIGHTS = {"visit": 25, "demand": 14, "call": 6, "case": 35, "vote": 5, "delivery": 8, "aid": 7}

    def __init__(self, client: Client, town: Town, seed: int = 7):
        self.client, self.town = client, town
        self.rng = random.Random(seed)
        self.waiting: dict[str, bool] = {}  # case id → emergency, until the case exists
        self.ready: deque[CaseInPlay] = deque()
        self.busy = 0

    # ---- set-up -----------------------------------------------------------------------------
    @classmethod
    async def set_up(cls, client: Client, communities: int, households: int, seed: int = 7) -> "Mix":
        rng = random.Random(seed)
        town = Town([Community(f"c-{uuid.uuid4().hex[:8]}") for _ in range(communities)])
        now = datetime.now(UTC)
        for c in town.communities:
            await client.call("intake", "RegisterCommunity", iapi.RegisterCommunityRequest(
                request_id=rid(), community_id=c.id, name=f"社区 {c.id}", kind=iev.COMMUNITY_KIND_RESIDENTIAL))
            for n in range(households):
                name, phone, idn = f"居民{rng.randint(10**6, 10**7)}", f"139{rng.randint(10**7, 10**8 - 1)}", id_number(rng)
                address = f"科苑路 {rng.randint(1, 999)} 弄 {n} 号"
                client.ledger.personal += [name, phone, idn, address]
                h = await client.call("intake", "RegisterHousehold", iapi.RegisterHouseholdRequest(
                    request_id=rid(), community_id=c.id, address=address, segments=[t.SEGMENT_LOCAL],
                    residents=[iapi.ResidentInput(name=name, phone=phone, id_number=idn, segment=t.SEGMENT_LOCAL)]))
                c.households.append((h.household_id, h.resident_ids[0]))
            camp = await client.call("intake", "OpenVisitCampaign", iapi.OpenVisitCampaignRequest(
                request_id=rid(), community_id=c.id, title="走访", starts_at=_ts(now - timedelta(days=1)),
                ends_at=_ts(now + timedelta(days=30))))
            c.campaign = camp.campaign_id
        p = await client.call("partner", "RegisterPartner", papi.RegisterPartnerRequest(
            request_id=rid(), name="中医药大学", kind=pev.PARTNER_KIND_UNIVERSITY))
        town.partner = p.partner_id
        for c in town.communities:
            await client.until("partner", "SignPairing", papi.SignPairingRequest(
                request_id=rid(), partner_id=p.partner_id, community_id=c.id))
        # A town's partners run several services and aid programmes: deliveries and aid are
        # spread over them (each offering and programme serialises its own commands; with one
        # of each, those rows were the whole system's limit).
        for category, title in (("clinic", "义诊"), ("legal", "法律咨询"), ("tutoring", "课业辅导"), ("repairs", "家电维修")):
            offering = await client.call("partner", "PublishOffering", papi.PublishOfferingRequest(
                request_id=rid(), partner_id=p.partner_id, category=category, title=title,
                capacity_per_period=MAX_COUNT))  # the most an offering may have: never the limit here
            town.offerings.append(offering.offering_id)
        for kind, name in ((pev.AID_KIND_HARDSHIP, "帮困"), (pev.AID_KIND_ELDERLY, "助老"), (pev.AID_KIND_MEDICAL, "助医")):
            prog = await client.call("partner", "OpenAidProgramme", papi.OpenAidProgrammeRequest(
                request_id=rid(), kind=kind, name=name))
            town.programmes.append(prog.programme_id)
        town.offering, town.programme = town.offerings[0], town.programmes[0]
        mix = cls(client, town, seed)
        for c in town.communities:
            await mix.open_deliberation(c, wait=True)
        # Aid needs partner-resource to know every resident.
        for c in town.communities:
            for _, resident in c.households[-1:]:
                await client.until("partner", "DisburseAid", papi.DisburseAidRequest(
                    request_id=rid(), programme_id=town.programme, resident_id=resident, amount=t.Money(fen=100)))
        return mix

    async def open_deliberation(self, c: Community, wait: bool = False) -> None:
        """A new deliberation once every household has voted on the last; opened again
        until casework knows every household, so each one can vote."""
        async with asyncio.timeout(60):
            while True:
                d = await self.client.until("casework", "OpenDeliberation", capi.OpenDeliberationRequest(
                    request_id=rid(), community_id=c.id, topic="停车"))
                if d.households_eligible == len(c.households) or not wait:
                    break
                await asyncio.sleep(0.5)
        c.deliberation, c.voters = d.deliberation_id, [h for h, _ in c.households]
        self.rng.shuffle(c.voters)

    # ---- the mix ----------------------------------------------------------------------------
    async def one(self) -> None:
        kind = self.rng.choices(list(self.WEIGHTS), weights=list(self.WEIGHTS.values()))[0]
        if kind == "case" and not self.ready:
            kind = "visit"
        await getattr(self, f"_{kind}")(self.rng.choice(self.town.communities))

    async def _visit(self, c: Community) -> None:
        household, _ = self.rng.choice(c.households)
        outcome = self.rng.choice([iev.VISIT_OUTCOME_MET, iev.VISIT_OUTCOME_MET, iev.VISIT_OUTCOME_NOT_HOME])
        await self.client.call("intake", "RecordVisit", iapi.RecordVisitRequest(
            request_id=rid(), campaign_id=c.campaign, household_id=household, outcome=outcome))

    async def _demand(self, c: Community) -> None:
        household, resident = self.rng.choice(c.households)
        channel = self.rng.choice([t.CHANNEL_FORM, t.CHANNEL_ONLINE, t.CHANNEL_LETTER, t.CHANNEL_CONTACT_TEAM])
        reply = await self.client.call("intake", "RaiseDemand", iapi.RaiseDemandRequest(
            request_id=rid(), community_id=c.id, household_id=household, resident_id=resident, channel=channel,
            urgency=t.URGENCY_NORMAL, category=self.rng.choice(["parking", "water", "noise", "elderly care"]),
            description="需要帮助"))
        if reply:
            self.waiting[case_id_for(reply.demand_id)] = False

    async def _call(self, c: Community) -> None:
        household, _ = self.rng.choice(c.households)
        kind = iev.CALL_KIND_EMERGENCY if self.rng.random() < 0.2 else iev.CALL_KIND_DEMAND
        reply = await self.client.call("intake", "LogHotlineCall", iapi.LogHotlineCallRequest(
            request_id=rid(), community_id=c.id, kind=kind, household_id=household, category="water",
            summary="停水"))
        if reply and reply.demand_id:
            self.waiting[case_id_for(reply.demand_id)] = kind == iev.CALL_KIND_EMERGENCY

    async def _case(self, c: Community) -> None:
        case = self.ready.popleft()
        rpc, request, after = self._step(case)
        self.busy += 1
        try:
            if await self.client.call("casework", rpc, request) is not None and after:
                case.step = after
                self.ready.append(case)
        finally:
            self.busy -= 1

    def _step(self, k: CaseInPlay):
        """The next command on a case, and the step after it (None: the case is done)."""
        r, cid = rid(), k.case_id
        match k.step:
            case "respond" if k.emergency:
                return "RecordOnSiteArrival", capi.RecordOnSiteArrivalRequest(request_id=r, case_id=cid), "triage"
            case "respond":
                return "RespondToCase", capi.RespondToCaseRequest(request_id=r, case_id=cid), "triage"
            case "triage":
                track = self.rng.choice([cev.TRACK_SOLVE_NOW, cev.TRACK_SOLVE_NOW, cev.TRACK_EXPLAIN])
                return "TriageCase", capi.TriageCaseRequest(request_id=r, case_id=cid, track=track), \
                    "resolve" if track == cev.TRACK_SOLVE_NOW else "explain"
            case "resolve":
                return "ResolveCase", capi.ResolveCaseRequest(request_id=r, case_id=cid, summary="已解决"), "rate"
            case "explain":
                return "ExplainCase", capi.ExplainCaseRequest(request_id=r, case_id=cid, explanation="政策解释"), "rate"
            case "rate":
                k.ratings += 1
                score = self.rng.randint(1, 5)
                again = k.ratings == 1 and score <= 2 and self.rng.random() < 0.5  # only the unhappy reopen
                return "RateSatisfaction", capi.RateSatisfactionRequest(
                    request_id=r, case_id=cid, score=score), "reopen" if again else None
            case "reopen":
                k.emergency = False  # reopened, it is answered as an ordinary case
                return "ReopenCase", capi.ReopenCaseRequest(request_id=r, case_id=cid, reason="又坏了"), "triage"
        raise ValueError(k.step)

    async def _vote(self, c: Community) -> None:
        if not c.voters:
            await self.open_deliberation(c)
            return
        household = c.voters.pop()
        await self.client.call("casework", "CastVote", capi.CastVoteRequest(
            request_id=rid(), deliberation_id=c.deliberation, household_id=household,
            choice=self.rng.choice([cev.VOTE_CHOICE_FOR, cev.VOTE_CHOICE_FOR, cev.VOTE_CHOICE_AGAINST])))

    async def _delivery(self, c: Community) -> None:
        await self.client.call("partner", "RecordDelivery", papi.RecordDeliveryRequest(
            request_id=rid(), offering_id=self.rng.choice(self.town.offerings), community_id=c.id,
            person_times=self.rng.randint(1, 5)))

    async def _aid(self, c: Community) -> None:
        _, resident = self.rng.choice(c.households)
        await self.client.call("partner", "DisburseAid", papi.DisburseAidRequest(
            request_id=rid(), programme_id=self.rng.choice(self.town.programmes), resident_id=resident,
            amount=t.Money(fen=self.rng.randint(100, 100_000))))

    async def discover_cases(self, stop: asyncio.Event) -> None:
        """Cases open asynchronously (casework consumes the demand from Kafka): a case is
        worked on once GetCase finds it."""
        next_look: dict[str, tuple[float, float]] = {}  # case → (when to look again, back-off)
        while not stop.is_set():
            now = time.monotonic()
            for case_id, emergency in list(self.waiting.items()):
                when, wait = next_look.get(case_id, (now + 0.5, 0.5))
                if when > now:
                    next_look[case_id] = (when, wait)
                    continue
                found = await self.client.call("casework", "GetCase", capi.GetCaseRequest(case_id=case_id),
                                               command=False)
                if found is not None:
                    del self.waiting[case_id]
                    next_look.pop(case_id, None)
                    self.ready.append(CaseInPlay(case_id, emergency))
                else:  # not there yet: look less often, as a real app polls
                    next_look[case_id] = (now + wait * 2, min(wait * 2, 8.0))
            await asyncio.sleep(0.25)

    async def run(self, rate: float, duration_s: float, max_in_flight: int = 256) -> float:
        """Commands at `rate` per second for `duration_s`, then every one of them finished;
        the time.monotonic() at which the last one was answered.
        (A cap of 800 in flight was tried: on two cores the extra concurrency cost more CPU
        per command, 11.7 against 7.9 ms, and the system sustained less.)"""
        stop = asyncio.Event()
        finder = asyncio.create_task(self.discover_cases(stop))
        slots = asyncio.Semaphore(max_in_flight)
        tasks: set[asyncio.Task] = set()

        async def one() -> None:
            try:
                await self.one()
            finally:
                slots.release()

        start = time.monotonic()
        n = 0
        while (now := time.monotonic()) - start < duration_s:
            due = int((now - start) * rate) - n
            for _ in range(due):
                await slots.acquire()
                task = asyncio.create_task(one())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
            await asyncio.sleep(0.01)
        if tasks:
            await asyncio.gather(*tasks)
        answered = time.monotonic()
        stop.set()
        await finder  # may wait out a case lookup's retries: not part of the commands' time
        return answered


def _ts(dt: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(dt)
    return out
