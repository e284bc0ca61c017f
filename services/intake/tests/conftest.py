"""A real intake server (gRPC + PostgreSQL) and its relay to the real Kafka, per test."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from ganshou.intake.v1 import intake_service_pb2_grpc as rpc
from ganshou_common.grpc_scaffold.auth import Role, mint_token
from ganshou_common.migrate import migrate
from ganshou_common.outbox.relay import OutboxRelay
from ganshou_common.testing.fixtures import fresh_database
from ganshou_intake.adapters.read_models import SQL_DIR
from ganshou_intake.app.bootstrap import Settings, bootstrap
from ganshou_common.pii import MasterKey

SECRET = "intake-test-secret-0123456789abcdef"


@dataclass
class Intake:
    stub: rpc.IntakeServiceStub
    dsn: str
    port: int
    topic: str
    master: MasterKey

    @staticmethod
    def auth(role: Role, *communities: str, subject: str = "tester") -> tuple[tuple[str, str]]:
        return (("authorization", "Bearer " + mint_token(SECRET, subject, role, list(communities))),)

    admin = staticmethod(lambda: Intake.auth(Role.TOWN_ADMIN, subject="admin-1"))
    cadre = staticmethod(lambda *c: Intake.auth(Role.COMMUNITY_CADRE, *c, subject="cadre-1"))


@pytest.fixture
async def intake(pg_port: int, kafka_bootstrap: str) -> AsyncIterator[Intake]:
    os.environ["GANSHOU_TOKEN_SECRET"] = SECRET
    os.environ["GRPC_PORT"] = "0"
    os.environ["GRPC_HOST"] = "127.0.0.1"
    async with fresh_database(pg_port) as dsn:
        await migrate(dsn, [SQL_DIR])
        master = MasterKey.from_base64(base64.b64encode(os.urandom(32)).decode())
        server, close = await bootstrap(Settings(dsn, master, 10))
        await server.start()
        # The relay publishes to a topic of this test's own, not ganshou.intake.events.v1,
        # so a running local system's consumers never see test events.
        topic = f"test.intake.{uuid.uuid4().hex[:8]}"
        relay = OutboxRelay(dsn, kafka_bootstrap, topic, "intake")
        relay_task = asyncio.create_task(relay.run())
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                yield Intake(rpc.IntakeServiceStub(channel), dsn, server.port, topic, master)
        finally:
            relay.stop()
            await relay_task
            await server.stop()
            await close()


@pytest.fixture
def community_id() -> str:
    return f"c-{uuid.uuid4().hex[:8]}"
