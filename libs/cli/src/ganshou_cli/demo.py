"""The demonstration town: communities, households of the five segments, a visit
campaign, hotline calls with emergencies, cases to every outcome with ratings and
reopenings, a deliberation, partners with pairings, offerings, deliveries and aid in all
five kinds — loaded through the public gRPC APIs, deterministic for a seed.

Request ids derive from the seed, so a load interrupted and run again repeats nothing it
had done; a town already loaded (zj-01 has households) is left as it is.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from rich.progress import Progress

from ganshou.casework.v1 import casework_service_pb2 as capi
from ganshou.casework.v1 import events_pb2 as cev
from ganshou.common.v1 import types_pb2 as t
from ganshou.intake.v1 import events_pb2 as iev
from ganshou.intake.v1 import intake_service_pb2 as iapi
from ganshou.partner_resource.v1 import events_pb2 as pev
from ganshou.partner_resource.v1 import partner_resource_service_pb2 as papi
from ganshou_cli.clients import Clients

COMMUNITIES = ["科苑", "孙桥", "张江", "环东", "汤臣", "古桐", "江益", "中心", "蔡伦", "银河", "大众", "新丰",
               "城南", "金星", "长元", "里仁", "沔北", "中区", "益江", "北蔡", "新德", "曙光", "合庆", "唐镇",
               "果园", "东明", "高科", "晨晖", "丹桂", "玉兰", "紫薇", "碧波", "祖冲之", "郭守敬", "李冰"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超"]
SEGMENTS = [(t.SEGMENT_LOCAL, 40), (t.SEGMENT_MIGRANT, 35), (t.SEGMENT_WHITE_COLLAR, 15),
            (t.SEGMENT_HIGH_END_TALENT, 6), (t.SEGMENT_FOREIGN_NATIONAL, 4)]
CATEGORIES = ["water", "electricity", "drainage", "medical", "neighbour-dispute", "parking", "elderly-care"]
TRACKS = [(cev.TRACK_SOLVE_NOW, 55), (cev.TRACK_SOLVE_SOON, 22), (cev.TRACK_LONG_TERM_PLAN, 8), (cev.TRACK_EXPLAIN, 15)]
PARTNERS = [("上海中医药大学", pev.PARTNER_KIND_UNIVERSITY, "massage"), ("张江社区卫生服务中心", pev.PARTNER_KIND_HOSPITAL, "clinic"),
            ("药物研究所", pev.PARTNER_KIND_RESEARCH_INSTITUTE, "tutoring"), ("园林管理所", pev.PARTNER_KIND_GOVERNMENT_AGENCY, "gardening"),
            ("高科技园区公司", pev.PARTNER_KIND_COMPANY, "elderly-care"), ("青年白领俱乐部", pev.PARTNER_KIND_SOCIAL_ORGANISATION, "tutoring")]


def _ts(dt: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(dt)
    return out


def _pick(rng: random.Random, weighted):
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def _phone(rng: random.Random) -> str:
    return f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"


def _id_number(rng: random.Random) -> str:
    body = f"310115{rng.randrange(1940, 2005)}{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}{rng.randrange(1000):03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights)) % 11]


async def _eventually(call: Callable[[], Awaitable], tries: int = 120):
    """Retry a call that depends on another service having consumed our events."""
    for attempt in range(tries):
        try:
            return await call()
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
                                  grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE) or attempt == tries - 1:
                raise
            await asyncio.sleep(0.5)


class Town:
    def __init__(self, clients: Clients, seed: int, communities: int, households: int):
        self.c, self.rng, self.seed = clients, random.Random(seed), seed
        self.n_communities, self.n_households = min(communities, len(COMMUNITIES)), households
        self.md = clients.metadata
        self._n = 0
        self.households: dict[str, list[iapi.RegisterHouseholdResponse]] = {}
        self.demands: dict[str, list[str]] = {}
        self._id_numbers: set[str] = set()

    def rid(self) -> str:
        self._n += 1
        return f"demo-{self.seed}-{self._n}"

    async def load(self, progress: Progress) -> None:
        ids = [f"zj-{i + 1:02d}" for i in range(self.n_communities)]
        task = progress.add_task("communities and households", total=len(ids) * self.n_households)
        for i, cid in enumerate(ids):
            await self.c.intake.RegisterCommunity(iapi.RegisterCommunityRequest(
                request_id=self.rid(), community_id=cid, name=f"{COMMUNITIES[i]}居委",
                kind=iev.COMMUNITY_KIND_RESIDENTIAL if i % 3 else iev.COMMUNITY_KIND_VILLAGE), metadata=self.md)
            self.households[cid], self.demands[cid] = [], []
            for h in range(self.n_households):
                self.households[cid].append(await self.c.intake.RegisterHousehold(self._household(cid, h),
                                                                                  metadata=self.md))
                progress.advance(task)
        task = progress.add_task("visits, calls and demands", total=len(ids))
        for cid in ids:
            await self._visits_and_calls(cid)
            progress.advance(task)
        task = progress.add_task("cases to their outcomes", total=sum(len(d) for d in self.demands.values()))
        for cid in ids:
            await self._work_cases(cid, progress, task)
        task = progress.add_task("deliberation, posts, appraisals", total=1)
        await self._deliberate(ids[0])
        progress.advance(task)
        task = progress.add_task("partners, offerings and aid", total=len(PARTNERS))
        await self._partners(ids, progress, task)
        await self._partner_help(ids)
        task = progress.add_task("organisations, volunteers, service windows", total=len(ids))
        await self._region(ids, progress, task)

    def _id_number(self) -> str:
        """One no other resident of the town has: one person, one resident (intake refuses a second)."""
        while (number := _id_number(self.rng)) in self._id_numbers:
            pass
        self._id_numbers.add(number)
        return number

    def _household(self, cid: str, h: int) -> iapi.RegisterHouseholdRequest:
        rng = self.rng
        segment = _pick(rng, SEGMENTS)
        care = [rng.choice([t.CARE_GROUP_HARDSHIP, t.CARE_GROUP_SPECIAL, t.CARE_GROUP_VULNERABLE])] \
            if rng.random() < 0.15 else []
        residents = [iapi.ResidentInput(name=rng.choice(SURNAMES) + rng.choice(GIVEN), phone=_phone(rng),
                                        id_number=self._id_number(), segment=segment, care_groups=care)
                     for _ in range(rng.randint(1, 3))]
        return iapi.RegisterHouseholdRequest(request_id=self.rid(), community_id=cid,
                                             address=f"{rng.randint(1, 300)}弄{rng.randint(1, 40)}号{rng.randint(101, 1802)}室",
                                             segments=[segment], care_groups=care, residents=residents)

    async def _visits_and_calls(self, cid: str) -> None:
        rng, now = self.rng, datetime.now(UTC)
        camp = await self.c.intake.OpenVisitCampaign(iapi.OpenVisitCampaignRequest(
            request_id=self.rid(), community_id=cid, title="走千家 听万言", starts_at=_ts(now - timedelta(days=60)),
            ends_at=_ts(now + timedelta(days=30))), metadata=self.md)
        for h in self.households[cid]:
            met = rng.random() < 0.878
            demands = [iapi.DemandHeard(category=rng.choice(CATEGORIES), description="走访中听到的诉求",
                                        urgency=t.URGENCY_NORMAL)] if met and rng.random() < 0.25 else []
            visit = await self.c.intake.RecordVisit(iapi.RecordVisitRequest(
                request_id=self.rid(), campaign_id=camp.campaign_id, household_id=h.household_id,
                outcome=iev.VISIT_OUTCOME_MET if met else iev.VISIT_OUTCOME_NOT_HOME, demands=demands,
                visited_at=_ts(now - timedelta(days=rng.randint(1, 50)))), metadata=self.md)
            self.demands[cid] += list(visit.demand_ids)
        for kind in [iev.CALL_KIND_DEMAND] * 4 + [iev.CALL_KIND_EMERGENCY, iev.CALL_KIND_INQUIRY]:
            h = rng.choice(self.households[cid])
            call = await self.c.intake.LogHotlineCall(iapi.LogHotlineCallRequest(
                request_id=self.rid(), community_id=cid, kind=kind, household_id=h.household_id,
                caller_phone=_phone(rng), category=rng.choice(CATEGORIES), summary="热线来电"), metadata=self.md)
            if call.demand_id:
                self.demands[cid].append(call.demand_id)
        for channel in (t.CHANNEL_FORM, t.CHANNEL_LETTER, t.CHANNEL_ONLINE, t.CHANNEL_CONTACT_TEAM):
            d = await self.c.intake.RaiseDemand(iapi.RaiseDemandRequest(
                request_id=self.rid(), community_id=cid, channel=channel, urgency=t.URGENCY_NORMAL,
                category=rng.choice(CATEGORIES), description="咨询单/来信/网上诉求"), metadata=self.md)
            self.demands[cid].append(d.demand_id)

    async def _cases(self, cid: str) -> dict[str, capi.Case]:
        async def listed():
            out, token = {}, ""
            while True:
                page = await self.c.casework.ListCases(capi.ListCasesRequest(community_id=cid, page_size=500,
                                                                             page_token=token), metadata=self.md)
                out.update({k.demand_id: k for k in page.cases})
                token = page.next_page_token
                if not token:
                    break
            if len(out) < len(self.demands[cid]):
                raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, None, None, "cases not opened yet")
            return out
        return await _eventually(listed)

    async def _work_cases(self, cid: str, progress: Progress, task) -> None:
        cw, md = self.c.casework, self.md
        for demand_id, case in sorted((await self._cases(cid)).items()):
            progress.advance(task)
            # Each case's fate and request ids derive from the seed and the case alone, so a
            # reload (where every case is already worked) asks the same and changes nothing.
            rng = random.Random(f"{self.seed}-{demand_id}")
            step = iter(range(100))
            rid = lambda: f"demo-{self.seed}-{case.case_id}-{next(step)}"  # noqa: E731
            fate = rng.random()
            if case.status != capi.CASE_STATUS_OPEN or fate > 0.95:
                continue  # already worked (a reload), or still waiting: the 5% not yet reached
            k = case.case_id
            if case.urgency == t.URGENCY_EMERGENCY:
                await cw.RecordOnSiteArrival(capi.RecordOnSiteArrivalRequest(request_id=rid(), case_id=k), metadata=md)
            else:
                await cw.RespondToCase(capi.RespondToCaseRequest(request_id=rid(), case_id=k, note="已受理"),
                                       metadata=md)
            if fate > 0.892:
                continue  # responded, still in hand
            track = _pick(rng, TRACKS)
            await cw.TriageCase(capi.TriageCaseRequest(request_id=rid(), case_id=k, track=track), metadata=md)
            await cw.AssignCase(capi.AssignCaseRequest(request_id=rid(), case_id=k, assignee_id=f"cadre-{cid}",
                                                       assignee_kind=cev.ASSIGNEE_KIND_CADRE), metadata=md)
            if track == cev.TRACK_EXPLAIN:
                await cw.ExplainCase(capi.ExplainCaseRequest(request_id=rid(), case_id=k, explanation="耐心解释政策"),
                                     metadata=md)
            else:
                await cw.ResolveCase(capi.ResolveCaseRequest(request_id=rid(), case_id=k, summary="已解决"),
                                     metadata=md)
            score = rng.choices([5, 4, 3, 2, 1], [55, 28, 9, 6, 2])[0]
            await cw.RateSatisfaction(capi.RateSatisfactionRequest(request_id=rid(), case_id=k, score=score,
                                                                   comment="感受评价"), metadata=md)
            if score <= 2 and rng.random() < 0.5:
                await cw.ReopenCase(capi.ReopenCaseRequest(request_id=rid(), case_id=k, reason="居民不满意"),
                                    metadata=md)

    async def _partner_help(self, ids: list[str]) -> None:
        """A case of each community still in hand asks the partners for help: the offering
        matched assigns its partner, whose staff then see it (`ganshou cases list --partner`)."""
        cw, md = self.c.casework, self.md
        for cid in ids:
            in_hand = sorted((k for k in (await self._cases(cid)).values() if k.status == capi.CASE_STATUS_RESPONDED),
                             key=lambda k: k.case_id)
            for k in in_hand[:1]:
                rid = f"demo-{self.seed}-{k.case_id}-help"
                await cw.TriageCase(capi.TriageCaseRequest(request_id=f"{rid}-triage", case_id=k.case_id,
                                                           track=cev.TRACK_SOLVE_SOON), metadata=md)
                await cw.RequestPartnerHelp(capi.RequestPartnerHelpRequest(
                    request_id=rid, case_id=k.case_id, need_category="elderly-care", note="上门助老"), metadata=md)

    async def _deliberate(self, cid: str) -> None:
        md, rng = self.md, random.Random(f"{self.seed}-deliberation")
        d = await _eventually(lambda: self.c.casework.OpenDeliberation(capi.OpenDeliberationRequest(
            request_id=f"demo-{self.seed}-deliberation", community_id=cid, topic="小区停车改造方案"), metadata=md))
        for h in self.households[cid]:
            try:
                await self.c.casework.CastVote(capi.CastVoteRequest(
                    request_id=self.rid(), deliberation_id=d.deliberation_id, household_id=h.household_id,
                    choice=cev.VOTE_CHOICE_FOR if rng.random() < 0.97 else cev.VOTE_CHOICE_AGAINST), metadata=md)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.ALREADY_EXISTS:  # voted in an earlier load
                    raise
        for kind in (cev.POST_KIND_POLICY_OUTREACH, cev.POST_KIND_SAFETY_PATROL, cev.POST_KIND_MEDICAL_ADVICE):
            await self.c.casework.EstablishPost(capi.EstablishPostRequest(
                request_id=self.rid(), community_id=cid, kind=kind, holder=rng.choice(SURNAMES) + "师傅"), metadata=md)

    async def _region(self, ids: list[str], progress: Progress, task) -> None:
        """Organisation standardisation, commitments, members, volunteers, service windows."""
        md, rng, pr = self.md, random.Random(f"{self.seed}-region"), self.c.partner
        partners = await pr.ListPartners(papi.ListPartnersRequest(page_size=50), metadata=md)
        for n, cid in enumerate(ids):
            org = await pr.EnrollOrganisation(papi.EnrollOrganisationRequest(
                request_id=self.rid(), name=f"{COMMUNITIES[n]}党支部", community_id=cid,
                kind=pev.ORGANISATION_KIND_RESIDENTIAL if n % 3 else pev.ORGANISATION_KIND_VILLAGE), metadata=md)
            for item in rng.sample(range(1, 7), k=rng.randint(3, 6)):
                await pr.RecordStandardItem(papi.RecordStandardItemRequest(
                    request_id=self.rid(), organisation_id=org.organisation_id, item=item), metadata=md)
            if rng.random() < 0.5:
                await pr.ApplyForDemonstration(papi.ApplyForDemonstrationRequest(
                    request_id=self.rid(), organisation_id=org.organisation_id), metadata=md)
                await pr.DecideDemonstration(papi.DecideDemonstrationRequest(
                    request_id=self.rid(), organisation_id=org.organisation_id, designated=rng.random() < 0.6),
                    metadata=md)
            for kind in ("policy outreach", "safety patrol"):
                c = await pr.MakeCommitment(papi.MakeCommitmentRequest(
                    request_id=self.rid(), member_id=f"member-{cid}-{kind}", kind=kind, community_id=cid), metadata=md)
                if rng.random() < 0.7:
                    await pr.FulfilCommitment(papi.FulfilCommitmentRequest(
                        request_id=self.rid(), commitment_id=c.commitment_id), metadata=md)
            if partners.partners:
                await pr.RegisterPartnerMembers(papi.RegisterPartnerMembersRequest(
                    request_id=self.rid(), partner_id=partners.partners[n % len(partners.partners)].partner_id,
                    community_id=cid, members=rng.randint(20, 200)), metadata=md)
            team = await pr.RegisterVolunteerTeam(papi.RegisterVolunteerTeamRequest(
                request_id=self.rid(), name=f"{COMMUNITIES[n]}青年志愿者", community_id=cid), metadata=md)
            vols = [await pr.RegisterVolunteer(papi.RegisterVolunteerRequest(
                request_id=self.rid(), team_id=team.team_id, name=rng.choice(SURNAMES) + rng.choice(GIVEN),
                phone=_phone(rng), segment=_pick(rng, SEGMENTS)), metadata=md) for _ in range(3)]
            await pr.RecordVolunteerActivity(papi.RecordVolunteerActivityRequest(
                request_id=self.rid(), team_id=team.team_id, title="社区志愿服务",
                volunteers=[papi.VolunteerTime(volunteer_id=v.volunteer_id, minutes=rng.choice([60, 90, 120]))
                            for v in vols]), metadata=md)
            if n % 5 == 0:
                w = await pr.OpenServiceWindow(papi.OpenServiceWindowRequest(
                    request_id=self.rid(), office=n // 5 % 6 + 1, community_id=cid, schedule="工作日 18:00—20:00，周六上午",
                    evenings=True, weekends=True), metadata=md)
                await pr.RecordAfterHoursService(papi.RecordAfterHoursServiceRequest(
                    request_id=self.rid(), window_id=w.window_id, date=datetime.now(UTC).strftime("%Y-%m-%d"),
                    evening_person_times=rng.randint(5, 30), weekend_person_times=rng.randint(5, 30)), metadata=md)
            progress.advance(task)

    async def _partners(self, ids: list[str], progress: Progress, task) -> None:
        md, rng, pr = self.md, random.Random(f"{self.seed}-partners"), self.c.partner
        kinds = {pev.AID_KIND_HARDSHIP: "助困", pev.AID_KIND_DISABILITY: "助残", pev.AID_KIND_ELDERLY: "助老",
                 pev.AID_KIND_MEDICAL: "助医", pev.AID_KIND_EDUCATION: "助学"}
        programmes = [await pr.OpenAidProgramme(papi.OpenAidProgrammeRequest(
            request_id=self.rid(), kind=k, name=f"{name}基金"), metadata=md) for k, name in kinds.items()]
        for n, (name, kind, category) in enumerate(PARTNERS):
            p = await pr.RegisterPartner(papi.RegisterPartnerRequest(request_id=self.rid(), name=name, kind=kind),
                                         metadata=md)
            if n < len(PARTNERS) - 1 or rng.random() < 0.92:
                cid = ids[n % len(ids)]
                pairing = await _eventually(lambda: pr.SignPairing(papi.SignPairingRequest(
                    request_id=f"demo-{self.seed}-pairing-{n}", partner_id=p.partner_id, community_id=cid,
                    relief_group=f"第{n + 1}组"), metadata=md))
                await pr.RecordAgreement(papi.RecordAgreementRequest(
                    request_id=self.rid(), pairing_id=pairing.pairing_id, category=n % 4 + 1, title="结对共建"),
                    metadata=md)
            o = await pr.PublishOffering(papi.PublishOfferingRequest(
                request_id=self.rid(), partner_id=p.partner_id, category=category, title=f"{name} 志愿服务",
                capacity_per_period=5000), metadata=md)
            for cid in ids:
                await pr.RecordDelivery(papi.RecordDeliveryRequest(
                    request_id=self.rid(), offering_id=o.offering_id, community_id=cid,
                    person_times=rng.randint(3, 15)), metadata=md)
                # and one to a resident at home, counted in their segment too
                home = papi.RecordDeliveryRequest(request_id=self.rid(), offering_id=o.offering_id, community_id=cid,
                                                  resident_id=rng.choice(self.households[cid]).resident_ids[0],
                                                  person_times=1)
                await _eventually(lambda: pr.RecordDelivery(home, metadata=md))
            progress.advance(task)
        for cid in ids:
            for h in rng.sample(self.households[cid], k=min(3, len(self.households[cid]))):
                prog = rng.choice(programmes)
                await _eventually(lambda: pr.DisburseAid(papi.DisburseAidRequest(
                    request_id=f"demo-{self.seed}-aid-{h.household_id}", programme_id=prog.programme_id,
                    resident_id=h.resident_ids[0], amount=t.Money(fen=rng.choice([20_000, 50_000, 100_000]))),
                    metadata=md))


async def already_loaded(clients: Clients) -> bool:
    try:
        page = await clients.intake.ListHouseholds(iapi.ListHouseholdsRequest(community_id="zj-01", page_size=1),
                                                   metadata=clients.metadata)
    except grpc.aio.AioRpcError:
        return False
    return bool(page.households)


async def load_town(clients: Clients, seed: int = 2016, communities: int = 6, households: int = 15) -> bool:
    """Load the town; False (and nothing done) when a town is already there."""
    if await already_loaded(clients):
        return False
    with Progress() as progress:
        await Town(clients, seed, communities, households).load(progress)
    return True
