"""The gRPC face of casework: request in, use case called, response out."""

from __future__ import annotations

from ganshou.casework.v1 import casework_service_pb2 as api
from ganshou.casework.v1 import casework_service_pb2_grpc as rpc
from ganshou_casework.app.handlers import CaseworkApp
from ganshou_common.grpc_scaffold.auth import Role
from ganshou_common.grpc_scaffold.interceptor import current_correlation_id as cid
from ganshou_common.grpc_scaffold.interceptor import current_principal as who
from ganshou_common.grpc_scaffold.policy import admits

SERVICE = "ganshou.casework.v1.CaseworkService"
ADMIN, CADRE, HOTLINE, PARTNER, AUDITOR = (Role.TOWN_ADMIN, Role.COMMUNITY_CADRE, Role.HOTLINE_OPERATOR,
                                           Role.PARTNER_STAFF, Role.AUDITOR)


class CaseworkServicer(rpc.CaseworkServiceServicer):
    def __init__(self, app: CaseworkApp):
        self.app = app

    @admits(ADMIN, CADRE, HOTLINE)
    async def RespondToCase(self, request, context):
        return api.RespondToCaseResponse(case=await self.app.respond(who(), cid(), request))

    @admits(ADMIN, CADRE)
    async def TriageCase(self, request, context):
        return api.TriageCaseResponse(case=await self.app.triage(who(), cid(), request))

    @admits(ADMIN, CADRE)
    async def AssignCase(self, request, context):
        return api.AssignCaseResponse(case=await self.app.assign(who(), cid(), request))

    @admits(ADMIN, CADRE, HOTLINE, PARTNER)
    async def RecordOnSiteArrival(self, request, context):
        return api.RecordOnSiteArrivalResponse(case=await self.app.arrive(who(), cid(), request))

    @admits(ADMIN, CADRE, HOTLINE, PARTNER)
    async def AddCaseNote(self, request, context):
        return api.AddCaseNoteResponse(case=await self.app.note(who(), cid(), request))

    @admits(ADMIN, CADRE, PARTNER)
    async def ResolveCase(self, request, context):
        return api.ResolveCaseResponse(case=await self.app.resolve(who(), cid(), request))

    @admits(ADMIN, CADRE)
    async def ExplainCase(self, request, context):
        return api.ExplainCaseResponse(case=await self.app.explain(who(), cid(), request))

    @admits(ADMIN, CADRE, HOTLINE)
    async def RateSatisfaction(self, request, context):
        return api.RateSatisfactionResponse(case=await self.app.rate(who(), cid(), request))

    @admits(ADMIN, CADRE, HOTLINE)
    async def RecordFollowUp(self, request, context):
        return api.RecordFollowUpResponse(case=await self.app.follow_up(who(), cid(), request))

    @admits(ADMIN, CADRE, HOTLINE)
    async def ReopenCase(self, request, context):
        return api.ReopenCaseResponse(case=await self.app.reopen(who(), cid(), request))

    @admits(ADMIN, CADRE, HOTLINE)
    async def LinkCase(self, request, context):
        return api.LinkCaseResponse(case=await self.app.link(who(), cid(), request))

    @admits(ADMIN, CADRE)
    async def RequestPartnerHelp(self, request, context):
        return api.RequestPartnerHelpResponse(case=await self.app.request_partner_help(who(), cid(), request))

    @admits(ADMIN, CADRE, HOTLINE, PARTNER, AUDITOR)
    async def GetCase(self, request, context):
        return api.GetCaseResponse(case=await self.app.get_case(who(), request))

    @admits(ADMIN, CADRE, HOTLINE, PARTNER, AUDITOR)
    async def ListCases(self, request, context):
        return await self.app.list_cases(who(), request)

    @admits(ADMIN, CADRE)
    async def OpenDeliberation(self, request, context):
        return await self.app.open_deliberation(who(), cid(), request)

    @admits(ADMIN, CADRE)
    async def CastVote(self, request, context):
        return await self.app.cast_vote(who(), cid(), request)

    @admits(ADMIN, CADRE)
    async def DecideDeliberation(self, request, context):
        return await self.app.decide(who(), cid(), request)

    @admits(ADMIN, CADRE, AUDITOR)
    async def GetDeliberation(self, request, context):
        return await self.app.get_deliberation(who(), request.deliberation_id)

    @admits(ADMIN, CADRE)
    async def RecordAppraisal(self, request, context):
        return await self.app.record_appraisal(who(), cid(), request)

    @admits(ADMIN, CADRE)
    async def EstablishPost(self, request, context):
        return await self.app.establish_post(who(), cid(), request)

    @admits(ADMIN, CADRE, AUDITOR)
    async def ListPosts(self, request, context):
        return await self.app.list_posts(who(), request)
