"""Casework's composition root: settings from the environment; the server, the worker
(event reactions and promise timers) and the app built and wired here."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from ganshou.casework.v1 import casework_service_pb2_grpc as rpc
from ganshou_casework.api.servicer import SERVICE, CaseworkServicer
from ganshou_casework.app.handlers import CaseworkApp
from ganshou_casework.domain.promises import PromisePolicy
from ganshou_common import logs
from ganshou_common.config import env, env_int
from ganshou_common.consumer import IdempotentConsumer
from ganshou_common.eventstore.postgres import PostgresEventStore
from ganshou_common.grpc_scaffold.server import GrpcServer
from ganshou_common.grpc_scaffold.settings import server_settings_from_env
from ganshou_common.grpc_scaffold.tokens import verifier_from_env
from ganshou_common.topics import dead_letter_topic, events_topic

log = logs.get("ganshou.casework")


@dataclass
class Settings:
    database_url: str
    policy: PromisePolicy
    pool_size: int = 20

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(env("DATABASE_URL"),
                   PromisePolicy.parse(float(env("CASEWORK_RESPONSE_MINUTES_HOTLINE", "60")),
                                       float(env("CASEWORK_ON_SITE_MINUTES_EMERGENCY", "15")),
                                       os.environ.get("CASEWORK_PROMISE_OVERRIDES", "")),
                   env_int("DB_POOL_SIZE", 20))


async def build_app(settings: Settings) -> CaseworkApp:
    return CaseworkApp(await PostgresEventStore.connect(settings.database_url, max_size=settings.pool_size),
                       settings.policy)


def build_server(app: CaseworkApp) -> GrpcServer:
    server = GrpcServer(server_settings_from_env(), verifier_from_env())
    server.add(CaseworkServicer(app), rpc.add_CaseworkServiceServicer_to_server, SERVICE)
    return server


def build_consumer(app: CaseworkApp, bootstrap: str) -> IdempotentConsumer:
    # The group can be set apart (tests, a rebuilt worker); the claims stay "casework"'s.
    topics = os.environ.get("CASEWORK_SOURCE_TOPICS", "")
    return IdempotentConsumer("casework", app.store, bootstrap,
                              topics.split(",") if topics else [events_topic("intake"), events_topic("partner-resource")],
                              app.reactions(), dead_letter_topic("casework"),
                              group_id=os.environ.get("CASEWORK_CONSUMER_GROUP", "casework"))


def build_partner_consumer(app: CaseworkApp, bootstrap: str) -> IdempotentConsumer:
    """The partners casework may assign to. A group of its own reads partner-resource's history
    from its start, so a casework upgraded to this learns the partners registered before it."""
    topics = os.environ.get("CASEWORK_PARTNER_TOPICS", "")
    group = os.environ.get("CASEWORK_CONSUMER_GROUP", "casework")
    return IdempotentConsumer("casework-partners", app.store, bootstrap,
                              topics.split(",") if topics else [events_topic("partner-resource")],
                              app.partner_reactions(), dead_letter_topic("casework"), group_id=f"{group}-partners")


async def run_timers(app: CaseworkApp, stop: asyncio.Event, tick_s: float = 1.0) -> None:
    """Fire every promise past due, each tick; a restart catches up at once."""
    while not stop.is_set():
        try:
            fired = await app.fire_due_timers()
            if fired:
                log.info("promises_broken", cases=fired)
        except Exception as exc:  # an outage: try again next tick, never die
            log.warning("timer_tick_failed", error=str(exc))
        try:
            await asyncio.wait_for(stop.wait(), tick_s)
        except TimeoutError:
            pass
