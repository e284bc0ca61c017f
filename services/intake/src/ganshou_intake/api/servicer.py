"""The gRPC face of intake: request in, use case called, response out. Nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ganshou.intake.v1 import intake_service_pb2 as api
from ganshou.intake.v1 import intake_service_pb2_grpc as rpc
from ganshou_common.grpc_scaffold.auth import Role
from ganshou_common.grpc_scaffold.interceptor import current_correlation_id, current_principal
from ganshou_common.grpc_scaffold.policy import admits
from ganshou_intake.app.bulk_import import import_households
from ganshou_intake.app.handlers import IntakeApp

SERVICE = "ganshou.intake.v1.IntakeService"
ADMIN, CADRE, HOTLINE, AUDITOR = Role.TOWN_ADMIN, Role.COMMUNITY_CADRE, Role.HOTLINE_OPERATOR, Role.AUDITOR
PARTNER = Role.PARTNER_STAFF


class IntakeServicer(rpc.IntakeServiceServicer):
    def __init__(self, app: IntakeApp):
        self.app = app

    @admits(ADMIN)
    async def RegisterCommunity(self, request, context):
        return await self.app.register_community(current_principal(), current_correlation_id(), request)

    @admits(ADMIN, CADRE)
    async def RegisterHousehold(self, request, context):
        return await self.app.register_household(current_principal(), current_correlation_id(), request)

    @admits(ADMIN, CADRE)
    async def RegisterResident(self, request, context):
        return await self.app.register_resident(current_principal(), current_correlation_id(), request)

    @admits(ADMIN, CADRE)
    async def OpenVisitCampaign(self, request, context):
        return await self.app.open_visit_campaign(current_principal(), current_correlation_id(), request)

    @admits(ADMIN, CADRE)
    async def RecordVisit(self, request, context):
        return await self.app.record_visit(current_principal(), current_correlation_id(), request)

    @admits(ADMIN, CADRE, HOTLINE)
    async def RaiseDemand(self, request, context):
        return await self.app.raise_demand(current_principal(), current_correlation_id(), request)

    @admits(ADMIN, CADRE, HOTLINE)
    async def LogHotlineCall(self, request, context):
        return await self.app.log_hotline_call(current_principal(), current_correlation_id(), request)

    @admits(ADMIN, CADRE, HOTLINE, AUDITOR)
    async def GetHousehold(self, request, context):
        return await self.app.get_household(current_principal(), current_correlation_id(), request)

    @admits(ADMIN, CADRE, HOTLINE, AUDITOR)
    async def GetResident(self, request, context):
        return await self.app.get_resident(current_principal(), current_correlation_id(), request)

    @admits(ADMIN, CADRE, AUDITOR)
    async def ListHouseholds(self, request, context):
        return await self.app.list_households(current_principal(), request)

    @admits(ADMIN, CADRE, HOTLINE, AUDITOR)
    async def ListDemands(self, request, context):
        return await self.app.list_demands(current_principal(), request)

    @admits(ADMIN, CADRE, HOTLINE, PARTNER, AUDITOR)
    async def ListCommunities(self, request, context):
        return await self.app.list_communities(current_principal(), request)

    @admits(ADMIN)
    async def EraseResident(self, request, context):
        return await self.app.erase_resident(current_principal(), current_correlation_id(), request)

    @admits(ADMIN, CADRE)
    async def ImportHouseholds(self, request_iterator: AsyncIterator[api.ImportHouseholdsRequest], context):
        return await import_households(self.app, current_principal(), current_correlation_id(), request_iterator)
