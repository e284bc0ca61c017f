"""Intake's composition root: configuration from the environment, then every part built
and wired here, and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass

from ganshou.intake.v1 import intake_service_pb2_grpc as rpc
from ganshou_common.config import env, env_int
from ganshou_common.eventstore.postgres import PostgresEventStore
from ganshou_common.grpc_scaffold.server import GrpcServer
from ganshou_common.grpc_scaffold.settings import server_settings_from_env
from ganshou_common.grpc_scaffold.tokens import verifier_from_env
from ganshou_common.pii import MasterKey
from ganshou_intake.api.servicer import SERVICE, IntakeServicer
from ganshou_intake.app.handlers import IntakeApp


@dataclass
class Settings:
    database_url: str
    master_key: MasterKey
    pool_size: int

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(env("DATABASE_URL"), MasterKey.from_base64(env("GANSHOU_PII_MASTER_KEY")),
                   env_int("DB_POOL_SIZE", 20))


async def bootstrap(settings: Settings) -> tuple[GrpcServer, PostgresEventStore]:
    store = await PostgresEventStore.connect(settings.database_url, max_size=settings.pool_size)
    server = GrpcServer(server_settings_from_env(), verifier_from_env())
    server.add(IntakeServicer(IntakeApp(store, settings.master_key)), rpc.add_IntakeServiceServicer_to_server, SERVICE)
    return server, store
