"""Partner-resource's composition root."""

from __future__ import annotations

import os

from ganshou.partner_resource.v1 import partner_resource_service_pb2_grpc as rpc
from ganshou_common.config import env_int
from ganshou_common.consumer import IdempotentConsumer
from ganshou_common.eventstore.postgres import PostgresEventStore
from ganshou_common.grpc_scaffold.server import GrpcServer
from ganshou_common.grpc_scaffold.settings import server_settings_from_env
from ganshou_common.grpc_scaffold.tokens import verifier_from_env
from ganshou_common.topics import dead_letter_topic, events_topic
from ganshou_partner_resource.api.servicer import SERVICE, PartnerResourceServicer
from ganshou_partner_resource.app.handlers import PartnerResourceApp
from ganshou_partner_resource.app.region import RegionApp
from ganshou_common.pii import MasterKey


async def build_app(database_url: str) -> PartnerResourceApp:
    return PartnerResourceApp(await PostgresEventStore.connect(database_url, max_size=env_int("DB_POOL_SIZE", 20)))


def build_server(app: PartnerResourceApp) -> GrpcServer:
    master = os.environ.get("GANSHOU_PII_MASTER_KEY")  # volunteers' personal data is sealed with it
    region = RegionApp(app, MasterKey.from_base64(master) if master else None)
    server = GrpcServer(server_settings_from_env(), verifier_from_env())
    server.add(PartnerResourceServicer(app, region), rpc.add_PartnerResourceServiceServicer_to_server, SERVICE)
    return server


def build_consumer(app: PartnerResourceApp, bootstrap: str) -> IdempotentConsumer:
    topics = os.environ.get("PARTNER_SOURCE_TOPICS", "")
    return IdempotentConsumer(
        "partner-resource", app.store, bootstrap,
        topics.split(",") if topics else [events_topic("intake"), events_topic("casework")],
        app.reactions(), dead_letter_topic("partner-resource"),
        group_id=os.environ.get("PARTNER_CONSUMER_GROUP", "partner-resource"))
