"""The gRPC face of partner-resource: request in, use case called, response out."""

from __future__ import annotations

from ganshou.partner_resource.v1 import partner_resource_service_pb2 as api
from ganshou.partner_resource.v1 import partner_resource_service_pb2_grpc as rpc
from ganshou_common.grpc_scaffold.auth import Role
from ganshou_common.grpc_scaffold.interceptor import current_correlation_id as cid
from ganshou_common.grpc_scaffold.interceptor import current_principal as who
from ganshou_common.grpc_scaffold.policy import admits
from ganshou_partner_resource.app.handlers import PartnerResourceApp
from ganshou_partner_resource.app.region import RegionApp

SERVICE = "ganshou.partner_resource.v1.PartnerResourceService"
ADMIN, CADRE, PARTNER, AUDITOR = Role.TOWN_ADMIN, Role.COMMUNITY_CADRE, Role.PARTNER_STAFF, Role.AUDITOR
READERS = (ADMIN, CADRE, PARTNER, AUDITOR)


class PartnerResourceServicer(rpc.PartnerResourceServiceServicer):
    def __init__(self, app: PartnerResourceApp, region: RegionApp):
        self.app, self.region = app, region

    @admits(ADMIN)
    async def RegisterPartner(self, request, context):
        return await self.app.register_partner(who(), cid(), request)

    @admits(ADMIN)
    async def RecordPartnerLeft(self, request, context):
        return await self.app.record_partner_left(who(), cid(), request)

    @admits(ADMIN, CADRE)
    async def SignPairing(self, request, context):
        return await self.app.sign_pairing(who(), cid(), request)

    @admits(ADMIN, CADRE)
    async def EndPairing(self, request, context):
        return await self.app.end_pairing(who(), cid(), request)

    @admits(ADMIN, CADRE)
    async def RecordAgreement(self, request, context):
        return await self.app.record_agreement(who(), cid(), request)

    @admits(ADMIN, PARTNER)
    async def PublishOffering(self, request, context):
        return await self.app.publish_offering(who(), cid(), request)

    @admits(ADMIN, PARTNER)
    async def WithdrawOffering(self, request, context):
        return await self.app.withdraw_offering(who(), cid(), request)

    @admits(ADMIN, PARTNER)
    async def RecordDelivery(self, request, context):
        return await self.app.record_delivery(who(), cid(), request)

    @admits(ADMIN)
    async def OpenAidProgramme(self, request, context):
        return await self.app.open_aid_programme(who(), cid(), request)

    @admits(ADMIN, CADRE)
    async def DisburseAid(self, request, context):
        return await self.app.disburse_aid(who(), cid(), request)

    @admits(ADMIN)
    async def ReverseDisbursement(self, request, context):
        return await self.app.reverse_disbursement(who(), cid(), request)

    @admits(*READERS)
    async def GetPartner(self, request, context):
        return api.GetPartnerResponse(partner=await self.app.get_partner(who(), request.partner_id))

    @admits(*READERS)
    async def ListPartners(self, request, context):
        return await self.app.list_partners(who(), request)

    @admits(*READERS)
    async def ListPairings(self, request, context):
        return await self.app.list_pairings(who(), request)

    @admits(*READERS)
    async def ListAgreements(self, request, context):
        return await self.app.list_agreements(who(), request)

    @admits(*READERS)
    async def GetOffering(self, request, context):
        return api.GetOfferingResponse(offering=await self.app.get_offering(who(), request.offering_id))

    @admits(*READERS)
    async def ListOfferings(self, request, context):
        return await self.app.list_offerings(who(), request)

    @admits(*READERS)
    async def ListDeliveries(self, request, context):
        return await self.app.list_deliveries(who(), request)

    @admits(ADMIN, CADRE, AUDITOR)
    async def ListAidProgrammes(self, request, context):
        return await self.app.list_programmes(who(), request)

    @admits(*READERS)
    async def GetDisbursement(self, request, context):
        return api.GetDisbursementResponse(disbursement=await self.app.get_disbursement(who(), request.disbursement_id))

    @admits(ADMIN, CADRE, AUDITOR)
    async def ListDisbursements(self, request, context):
        return await self.app.list_disbursements(who(), request)

    @admits(*READERS)
    async def GetPairing(self, request, context):
        return api.GetPairingResponse(pairing=await self.app.get_view(
            who(), "pairing", request.pairing_id, api.Pairing, "pairing_id"))

    @admits(*READERS)
    async def GetAgreement(self, request, context):
        return api.GetAgreementResponse(agreement=await self.app.get_view(
            who(), "agreement", request.agreement_id, api.Agreement, "agreement_id"))

    @admits(*READERS)
    async def GetDelivery(self, request, context):
        return api.GetDeliveryResponse(delivery=await self.app.get_view(
            who(), "delivery", request.delivery_id, api.Delivery, "delivery_id"))

    @admits(ADMIN, CADRE, AUDITOR)
    async def GetAidProgramme(self, request, context):
        return api.GetAidProgrammeResponse(programme=await self.app.get_view(
            who(), "programme", request.programme_id, api.AidProgramme, "programme_id"))

    # ---- the rest of the region's resources ----------------------------------------------

    @admits(ADMIN, CADRE)
    async def EnrollOrganisation(self, request, context):
        return await self.region.enroll(who(), cid(), request)

    @admits(ADMIN, CADRE)
    async def RecordStandardItem(self, request, context):
        return await self.region.record_item(who(), cid(), request)

    @admits(ADMIN, CADRE)
    async def ApplyForDemonstration(self, request, context):
        return await self.region.apply_demonstration(who(), cid(), request)

    @admits(ADMIN)
    async def DecideDemonstration(self, request, context):
        return await self.region.decide_demonstration(who(), cid(), request)

    @admits(ADMIN)
    async def AssignGuidanceGroup(self, request, context):
        return await self.region.assign_guidance(who(), cid(), request)

    @admits(ADMIN, CADRE, AUDITOR)
    async def ListOrganisations(self, request, context):
        return await self.region.list_organisations(who(), request)

    @admits(ADMIN, CADRE)
    async def MakeCommitment(self, request, context):
        return await self.region.make_commitment(who(), cid(), request)

    @admits(ADMIN, CADRE)
    async def FulfilCommitment(self, request, context):
        return await self.region.fulfil_commitment(who(), cid(), request)

    @admits(ADMIN, CADRE, PARTNER)
    async def RegisterPartnerMembers(self, request, context):
        return await self.region.register_members(who(), cid(), request)

    @admits(ADMIN, CADRE)
    async def RegisterVolunteerTeam(self, request, context):
        return await self.region.register_team(who(), cid(), request)

    @admits(ADMIN, CADRE)
    async def RegisterVolunteer(self, request, context):
        return await self.region.register_volunteer(who(), cid(), request)

    @admits(ADMIN)
    async def EraseVolunteer(self, request, context):
        return await self.region.erase_volunteer(who(), cid(), request)

    @admits(ADMIN, CADRE)
    async def RecordVolunteerActivity(self, request, context):
        return await self.region.record_activity(who(), cid(), request)

    @admits(ADMIN, CADRE)
    async def OpenServiceWindow(self, request, context):
        return await self.region.open_window(who(), cid(), request)

    @admits(ADMIN, CADRE)
    async def RecordAfterHoursService(self, request, context):
        return await self.region.record_after_hours(who(), cid(), request)

    @admits(ADMIN, CADRE, AUDITOR)
    async def ListServiceWindows(self, request, context):
        return await self.region.list_windows(who(), request)
