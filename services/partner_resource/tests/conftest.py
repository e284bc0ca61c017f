"""A real partner-resource server (gRPC + PostgreSQL) per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from ganshou.common.v1 import envelope_pb2, types_pb2 as t
from ganshou.intake.v1 import events_pb2 as intake
from ganshou.partner_resource.v1 import partner_resource_service_pb2_grpc as rpc
from ganshou_common.grpc_scaffold.auth import Role, mint_token
from ganshou_common.migrate import migrate
from ganshou_common.testing.fixtures import fresh_database
from ganshou_partner_resource.__main__ import SQL_DIR
from ganshou_partner_resource.app.bootstrap import build_app, build_server
from ganshou_partner_resource.app.handlers import PartnerResourceApp

SECRET = "partner-test-secret-0123456789abcdef"


def envelope(message, stream_id: str, community_id: str = "") -> envelope_pb2.EventEnvelope:
    env = envelope_pb2.EventEnvelope(event_id=str(uuid.uuid4()), stream_id=stream_id, stream_version=1,
                                     event_type=message.DESCRIPTOR.full_name, community_id=community_id)
    env.payload.Pack(message)
    return env


@dataclass
class Partners:
    app: PartnerResourceApp
    stub: rpc.PartnerResourceServiceStub
    dsn: str

    @staticmethod
    def auth(role: Role, *communities: str, partner: str = "", subject: str = "tester"):
        return (("authorization", "Bearer " + mint_token(SECRET, subject, role, list(communities), partner)),)

    async def knows(self, community_id: str, residents: list[tuple[str, int]] = ()) -> None:
        """What intake's events would have told this service."""
        async with self.app.store.transaction() as tx:
            await self.app.on_community_registered(tx, envelope(
                intake.CommunityRegistered(community_id=community_id, name="x"), f"community-{community_id}"))
            for rid, segment in residents:
                await self.app.on_resident_registered(tx, envelope(intake.ResidentRegistered(
                    resident_id=rid, community_id=community_id, household_id="h-1", segment=segment,
                    care_groups=[t.CARE_GROUP_HARDSHIP]), f"resident-{rid}"))


@pytest.fixture
async def partners(pg_port: int) -> AsyncIterator[Partners]:
    os.environ.update(GANSHOU_TOKEN_SECRET=SECRET, GRPC_PORT="0", GRPC_HOST="127.0.0.1")
    async with fresh_database(pg_port) as dsn:
        await migrate(dsn, [SQL_DIR])
        app = await build_app(dsn)
        server = build_server(app)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                yield Partners(app, rpc.PartnerResourceServiceStub(channel), dsn)
        finally:
            await server.stop()
            await app.store.close()


@pytest.fixture
def community_id() -> str:
    return f"c-{uuid.uuid4().hex[:8]}"
