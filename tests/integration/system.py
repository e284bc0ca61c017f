"""The whole system for end-to-end tests: every service as the real processes `make run`
starts (servers, workers, relays, the metrics worker), on fresh databases and topics of
their own, so a test sees only its own events and a running local system is untouched."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ganshou.casework.v1 import casework_service_pb2_grpc as casework_rpc
from ganshou.intake.v1 import intake_service_pb2_grpc as intake_rpc
from ganshou.metrics.v1 import metrics_service_pb2_grpc as metrics_rpc
from ganshou.partner_resource.v1 import partner_resource_service_pb2_grpc as partner_rpc
from ganshou_casework.__main__ import SQL_DIR as CASEWORK_SQL
from ganshou_common.grpc_scaffold.auth import Role, mint_token
from ganshou_common.migrate import migrate
from ganshou_common.testing.fixtures import fresh_database
from ganshou_common.testing.procs import free_port, kill, spawn_module
from ganshou_intake.adapters.read_models import SQL_DIR as INTAKE_SQL
from ganshou_partner_resource.__main__ import SQL_DIR as PARTNER_SQL

SECRET = "system-test-secret-0123456789abcdef"


@dataclass
class Proc:
    name: str
    module: str
    command: str
    env: dict[str, str]
    grpc_port: int | None
    metrics_port: int
    popen: subprocess.Popen | None = None


@dataclass
class System:
    pg_port: int
    kafka: str
    logs: Path
    procs: dict[str, Proc] = field(default_factory=dict)
    topics: dict[str, str] = field(default_factory=dict)
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)

    @staticmethod
    def auth(role: Role = Role.TOWN_ADMIN, *communities: str, partner: str = "", subject: str = "e2e"):
        return (("authorization", "Bearer " + mint_token(SECRET, subject, role, list(communities), partner)),)

    async def start(self) -> "System":
        run = uuid.uuid4().hex[:8]
        self.topics = {s: f"test.{s}.{run}" for s in ("intake", "casework", "partner-resource")}
        admin = AIOKafkaAdminClient(bootstrap_servers=self.kafka)
        await admin.start()
        await admin.create_topics([NewTopic(t, 6, 1) for t in self.topics.values()])
        await admin.close()
        dsns = {}
        for service, sql in (("intake", INTAKE_SQL), ("casework", CASEWORK_SQL), ("partner", PARTNER_SQL)):
            dsns[service] = await self._stack.enter_async_context(fresh_database(self.pg_port))
            await migrate(dsns[service], [sql])
        common = {"GANSHOU_TOKEN_SECRET": SECRET, "KAFKA_BOOTSTRAP": self.kafka, "GRPC_HOST": "127.0.0.1",
                  "GANSHOU_PII_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(), "LOG_LEVEL": "INFO"}
        t = self.topics
        plan = [
            ("intake", "ganshou_intake", "serve", {"DATABASE_URL": dsns["intake"]}, True),
            ("intake-relay", "ganshou_intake", "relay", {"DATABASE_URL": dsns["intake"], "OUTBOX_TOPIC": t["intake"]},
             False),
            ("casework", "ganshou_casework", "serve", {"DATABASE_URL": dsns["casework"]}, True),
            ("casework-worker", "ganshou_casework", "worker", {
                "DATABASE_URL": dsns["casework"], "CASEWORK_SOURCE_TOPICS": f"{t['intake']},{t['partner-resource']}",
                "CASEWORK_PARTNER_TOPICS": t["partner-resource"],
                "CASEWORK_CONSUMER_GROUP": f"casework-{run}"}, False),
            ("casework-relay", "ganshou_casework", "relay",
             {"DATABASE_URL": dsns["casework"], "OUTBOX_TOPIC": t["casework"]}, False),
            ("partner", "ganshou_partner_resource", "serve", {"DATABASE_URL": dsns["partner"]}, True),
            ("partner-worker", "ganshou_partner_resource", "worker", {
                "DATABASE_URL": dsns["partner"], "PARTNER_SOURCE_TOPICS": f"{t['intake']},{t['casework']}",
                "PARTNER_CONSUMER_GROUP": f"partner-{run}"}, False),
            ("partner-relay", "ganshou_partner_resource", "relay",
             {"DATABASE_URL": dsns["partner"], "OUTBOX_TOPIC": t["partner-resource"]}, False),
            ("metrics", "ganshou_metrics", "worker", self.metrics_env(f"e2e-{run}"), True),
        ]
        for name, module, command, env, serves in plan:
            self.procs[name] = Proc(name, module, command, {**common, **env},
                                    free_port() if serves else None, free_port())
        for p in self.procs.values():
            self.spawn(p.name)
        await asyncio.gather(*(self.wait_ready(p.name) for p in self.procs.values()))
        return self

    def metrics_env(self, generation: str) -> dict[str, str]:
        return {"METRICS_GENERATION": generation, "METRICS_TOPIC_INTAKE": self.topics["intake"],
                "METRICS_TOPIC_CASEWORK": self.topics["casework"],
                "METRICS_TOPIC_PARTNER_RESOURCE": self.topics["partner-resource"]}

    def add_proc(self, name: str, module: str, command: str, env: dict[str, str], serves: bool) -> Proc:
        base = self.procs["metrics"].env
        self.procs[name] = Proc(name, module, command, {**base, **env}, free_port() if serves else None, free_port())
        return self.procs[name]

    def spawn(self, name: str) -> None:
        p = self.procs[name]
        env = {**p.env, "METRICS_PORT": str(p.metrics_port)}
        if p.grpc_port:
            env["GRPC_PORT"] = str(p.grpc_port)
        p.popen = spawn_module(p.module, env, self.logs / f"{name}.log", p.command)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        kill(self.procs[name].popen, sig)

    async def restart(self, name: str) -> None:
        self.kill(name)
        self.spawn(name)
        await self.wait_ready(name)

    async def wait_ready(self, name: str, timeout: float = 60) -> None:
        p = self.procs[name]
        async with asyncio.timeout(timeout):
            while True:
                if p.popen.poll() is not None:
                    raise RuntimeError(f"{name} exited: see {self.logs / (name + '.log')}")
                if await self._ready(p):
                    return
                await asyncio.sleep(0.3)

    async def _ready(self, p: Proc) -> bool:
        if p.grpc_port is None:
            proc = await asyncio.create_subprocess_exec("curl", "-sf", f"http://127.0.0.1:{p.metrics_port}/metrics",
                                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return await proc.wait() == 0
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{p.grpc_port}") as ch:
                reply = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
                return reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.aio.AioRpcError:
            return False

    def channel(self, name: str) -> grpc.aio.Channel:
        if name not in self.channels:
            self.channels[name] = grpc.aio.insecure_channel(f"127.0.0.1:{self.procs[name].grpc_port}")
        return self.channels[name]

    @property
    def intake(self):
        return intake_rpc.IntakeServiceStub(self.channel("intake"))

    @property
    def casework(self):
        return casework_rpc.CaseworkServiceStub(self.channel("casework"))

    @property
    def partners(self):
        return partner_rpc.PartnerResourceServiceStub(self.channel("partner"))

    def metrics(self, name: str = "metrics"):
        return metrics_rpc.MetricsServiceStub(self.channel(name))

    async def stop(self) -> None:
        for ch in self.channels.values():
            await ch.close()
        self.channels.clear()
        for p in self.procs.values():
            if p.popen is not None:
                kill(p.popen, signal.SIGTERM, timeout=15)
        await self._stack.aclose()
