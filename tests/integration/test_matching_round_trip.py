"""casework → partner-resource → casework over the real Kafka: a case's request for
partner help is matched to an offering and the partner ends up assigned to the case; the
partner leaving hands the case back."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ganshou.casework.v1 import casework_service_pb2 as capi
from ganshou.casework.v1 import events_pb2 as cev
from ganshou.common.v1 import envelope_pb2, types_pb2 as t
from ganshou.intake.v1 import events_pb2 as intake
from ganshou.partner_resource.v1 import events_pb2 as pev
from ganshou.partner_resource.v1 import partner_resource_service_pb2 as papi
from ganshou_casework.__main__ import SQL_DIR as CASEWORK_SQL
from ganshou_casework.app import bootstrap as cw
from ganshou_casework.app.handlers import case_id_for
from ganshou_casework.domain.promises import PromisePolicy
from ganshou_common.grpc_scaffold.auth import Principal, Role
from ganshou_common.migrate import migrate
from ganshou_common.outbox.relay import OutboxRelay
from ganshou_common.testing.fixtures import fresh_database
from ganshou_partner_resource.__main__ import SQL_DIR as PARTNER_SQL
from ganshou_partner_resource.app import bootstrap as pr

pytestmark = pytest.mark.integration
ADMIN = Principal("admin", Role.TOWN_ADMIN)


def envelope(message, stream_id: str, community_id: str) -> envelope_pb2.EventEnvelope:
    env = envelope_pb2.EventEnvelope(event_id=str(uuid.uuid4()), stream_id=stream_id, stream_version=1,
                                     event_type=message.DESCRIPTOR.full_name, community_id=community_id)
    env.payload.Pack(message)
    return env


async def test_help_requested_is_matched_and_the_partner_assigned(pg_port: int, kafka_bootstrap: str, monkeypatch) -> None:
    community = f"c-{uuid.uuid4().hex[:8]}"
    casework_topic, partner_topic = (f"test.{n}.{uuid.uuid4().hex[:8]}" for n in ("casework", "partner"))
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(casework_topic, 2, 1), NewTopic(partner_topic, 2, 1)])
    await admin.close()
    monkeypatch.setenv("CASEWORK_SOURCE_TOPICS", partner_topic)
    monkeypatch.setenv("CASEWORK_PARTNER_TOPICS", partner_topic)
    monkeypatch.setenv("CASEWORK_CONSUMER_GROUP", f"g-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("PARTNER_SOURCE_TOPICS", casework_topic)
    monkeypatch.setenv("PARTNER_CONSUMER_GROUP", f"g-{uuid.uuid4().hex[:8]}")

    async with fresh_database(pg_port) as cw_dsn, fresh_database(pg_port) as pr_dsn:
        await migrate(cw_dsn, [CASEWORK_SQL])
        await migrate(pr_dsn, [PARTNER_SQL])
        casework = await cw.build_app(cw.Settings(cw_dsn, PromisePolicy(), 5))
        partners = await pr.build_app(pr_dsn)
        tasks = []
        stoppers = []
        for relay in (OutboxRelay(cw_dsn, kafka_bootstrap, casework_topic, "casework"),
                      OutboxRelay(pr_dsn, kafka_bootstrap, partner_topic, "partner-resource")):
            tasks.append(asyncio.create_task(relay.run()))
            stoppers.append(relay.stop)
        for consumer in (cw.build_consumer(casework, kafka_bootstrap), cw.build_partner_consumer(casework, kafka_bootstrap),
                         pr.build_consumer(partners, kafka_bootstrap)):
            tasks.append(asyncio.create_task(consumer.run()))
            stoppers.append(consumer.stop)
        try:
            # partner-resource knows the community and has a clinic serving it
            async with partners.store.transaction() as tx:
                await partners.on_community_registered(tx, envelope(
                    intake.CommunityRegistered(community_id=community), f"community-{community}", community))
            p = await partners.register_partner(ADMIN, "", papi.RegisterPartnerRequest(
                request_id=uuid.uuid4().hex, name="社区卫生服务中心", kind=pev.PARTNER_KIND_HOSPITAL))
            await partners.publish_offering(ADMIN, "", papi.PublishOfferingRequest(
                request_id=uuid.uuid4().hex, partner_id=p.partner_id, category="home-nursing", title="上门护理",
                capacity_per_period=10, communities_served=[community]))

            # a case, worked to the point of asking partners for help
            demand = intake.DemandRaised(demand_id=str(uuid.uuid4()), community_id=community, channel=t.CHANNEL_VISIT,
                                         urgency=t.URGENCY_NORMAL, category="care", segment=t.SEGMENT_LOCAL)
            async with casework.store.transaction() as tx:
                await casework.on_demand_raised(tx, envelope(demand, f"demand-{demand.demand_id}", community))
            case_id = case_id_for(demand.demand_id)
            for req, step in ((capi.RespondToCaseRequest(request_id=uuid.uuid4().hex, case_id=case_id), casework.respond),
                              (capi.TriageCaseRequest(request_id=uuid.uuid4().hex, case_id=case_id,
                                                      track=cev.TRACK_SOLVE_SOON), casework.triage),
                              (capi.RequestPartnerHelpRequest(request_id=uuid.uuid4().hex, case_id=case_id,
                                                              need_category="home-nursing"),
                               casework.request_partner_help)):
                await step(ADMIN, "", req)

            async with asyncio.timeout(45):
                while True:
                    case = await casework.get_case(ADMIN, capi.GetCaseRequest(case_id=case_id))
                    if case.partner_id:
                        break
                    await asyncio.sleep(0.2)
            assert case.partner_id == p.partner_id
            assert case.assignee_kind == cev.ASSIGNEE_KIND_PARTNER and case.status == capi.CASE_STATUS_ASSIGNED
            assert [h.event_type.rsplit(".", 1)[1] for h in case.history][-2:] == ["PartnerHelpRequested", "CaseAssigned"]

            # The partner leaves: its case goes back to the community, to be assigned again.
            await partners.record_partner_left(ADMIN, "", papi.RecordPartnerLeftRequest(
                request_id=uuid.uuid4().hex, partner_id=p.partner_id, reason="合作到期"))
            async with asyncio.timeout(45):
                while (case := await casework.get_case(ADMIN, capi.GetCaseRequest(case_id=case_id))).partner_id:
                    await asyncio.sleep(0.2)
            assert case.status == capi.CASE_STATUS_TRIAGED and case.history[-1].event_type.endswith("CaseAssignmentEnded")
        finally:
            for stop in stoppers:
                stop()
            await asyncio.gather(*tasks)
            await casework.store.close()
            await partners.store.close()
