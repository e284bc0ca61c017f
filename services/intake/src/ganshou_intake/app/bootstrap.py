"""Intake's composition root: configuration from the environment, then every part built
and wired here, and nowhere else."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ganshou.intake.v1 import intake_service_pb2_grpc as rpc
from ganshou_common import logs
from ganshou_common.config import env, env_int
from ganshou_common.eventstore.postgres import PostgresEventStore
from ganshou_common.group_commit import GroupCommitter
from ganshou_common.grpc_scaffold.server import GrpcServer
from ganshou_common.grpc_scaffold.settings import server_settings_from_env
from ganshou_common.grpc_scaffold.tokens import verifier_from_env
from ganshou_common.pii import MasterKey, lookup_key
from ganshou_intake.adapters import call_people, id_numbers
from ganshou_intake.api.servicer import SERVICE, IntakeServicer
from ganshou_intake.app.handlers import IntakeApp

log = logs.get("ganshou.intake")


@dataclass
class Settings:
    database_url: str
    master_key: MasterKey
    pool_size: int
    # One batch writing at a time batches best: while it commits, the next one gathers
    # (docs/benchmarks.md: four workers cost more CPU a command and a worse tail). 0: each
    # command in a transaction of its own.
    group_commit_workers: int = 1

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(env("DATABASE_URL"), MasterKey.from_base64(env("GANSHOU_PII_MASTER_KEY")),
                   env_int("DB_POOL_SIZE", 20), env_int("GROUP_COMMIT_WORKERS", 1))


async def bootstrap(settings: Settings) -> tuple[GrpcServer, Callable[[], Awaitable[None]]]:
    """The server, and what closes what it uses once it has stopped."""
    store = await PostgresEventStore.connect(settings.database_url, max_size=settings.pool_size)
    # Commands share transactions (group commit): concurrent commands cost one commit and
    # one append between them instead of one each (docs/benchmarks.md).
    committer = GroupCommitter(store, settings.group_commit_workers) if settings.group_commit_workers > 0 else None
    server = GrpcServer(server_settings_from_env(), verifier_from_env())
    id_number_key = await lookup_key(store.pool, settings.master_key, "id_number")
    if claimed := await id_numbers.backfill(store.pool, settings.master_key, id_number_key):
        log.info("id_numbers_backfilled", claims=claimed)
    if calls := await call_people.backfill(store.pool, settings.master_key):
        log.info("call_people_backfilled", calls=calls)
    app = IntakeApp(store, settings.master_key, id_number_key, committer.execute if committer else None)
    server.add(IntakeServicer(app), rpc.add_IntakeServiceServicer_to_server, SERVICE)

    async def close() -> None:
        if committer:
            await committer.close()
        await store.close()

    return server, close
