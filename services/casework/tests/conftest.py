"""A real casework server (gRPC + PostgreSQL) per test, and helpers to feed it demands."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ganshou.casework.v1 import casework_service_pb2_grpc as rpc
from ganshou.common.v1 import envelope_pb2, types_pb2 as t
from ganshou.intake.v1 import events_pb2 as intake
from ganshou_casework.__main__ import SQL_DIR
from ganshou_casework.app.bootstrap import Settings, build_app, build_server
from ganshou_casework.app.handlers import CaseworkApp
from ganshou_casework.domain.promises import PromisePolicy
from ganshou_common.grpc_scaffold.auth import Role, mint_token
from ganshou_common.migrate import migrate
from ganshou_common.testing.fixtures import fresh_database

SECRET = "casework-test-secret-0123456789abcd"


def demand_envelope(community_id: str, *, urgency=t.URGENCY_NORMAL, channel=t.CHANNEL_HOTLINE,
                    demand_id: str | None = None, household_id: str = "") -> envelope_pb2.EventEnvelope:
    d = intake.DemandRaised(demand_id=demand_id or str(uuid.uuid4()), community_id=community_id, channel=channel,
                            urgency=urgency, category="water", description="停水", segment=t.SEGMENT_LOCAL,
                            household_id=household_id)
    d.raised_at.FromDatetime(datetime.now(UTC))
    env = envelope_pb2.EventEnvelope(event_id=str(uuid.uuid4()), stream_id=f"demand-{d.demand_id}", stream_version=1,
                                     event_type=d.DESCRIPTOR.full_name, community_id=community_id, source="intake")
    env.payload.Pack(d)
    return env


async def new_topic(bootstrap: str) -> str:
    name = f"test.intake.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(name, 2, 1)])
    await admin.close()
    return name


async def publish(bootstrap: str, topic: str, envelopes: list[envelope_pb2.EventEnvelope]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for env in envelopes:
            await producer.send_and_wait(topic, env.SerializeToString(), key=env.stream_id.encode())
    finally:
        await producer.stop()


@dataclass
class Casework:
    app: CaseworkApp
    stub: rpc.CaseworkServiceStub
    dsn: str

    @staticmethod
    def auth(role: Role, *communities: str, partner: str = "", subject: str = "tester"):
        return (("authorization", "Bearer " + mint_token(SECRET, subject, role, list(communities), partner)),)

    async def open_case(self, community_id: str, **kw) -> str:
        """A demand as intake publishes it, applied by the consumer's reaction: its case id."""
        env = demand_envelope(community_id, **kw)
        async with self.app.store.transaction() as tx:
            assert await tx.claim("casework", env.stream_id, env.stream_version)
            await self.app.on_demand_raised(tx, env)
        from ganshou_casework.app.handlers import case_id_for
        d = intake.DemandRaised()
        env.payload.Unpack(d)
        return case_id_for(d.demand_id)


def partner_envelope(event, version: int = 1) -> envelope_pb2.EventEnvelope:
    """A partner-resource event about one partner, as its relay publishes it."""
    env = envelope_pb2.EventEnvelope(event_id=str(uuid.uuid4()), stream_id=f"partner-{event.partner_id}",
                                     stream_version=version, event_type=event.DESCRIPTOR.full_name,
                                     source="partner-resource")
    env.occurred_at.FromDatetime(datetime.now(UTC))
    env.payload.Pack(event)
    return env


@pytest.fixture
async def casework(pg_port: int) -> AsyncIterator[Casework]:
    os.environ.update(GANSHOU_TOKEN_SECRET=SECRET, GRPC_PORT="0", GRPC_HOST="127.0.0.1")
    async with fresh_database(pg_port) as dsn:
        await migrate(dsn, [SQL_DIR])
        app = await build_app(Settings(dsn, PromisePolicy(), 10))
        server = build_server(app)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                yield Casework(app, rpc.CaseworkServiceStub(channel), dsn)
        finally:
            await server.stop()
            await app.store.close()


@pytest.fixture
def community_id() -> str:
    return f"c-{uuid.uuid4().hex[:8]}"
