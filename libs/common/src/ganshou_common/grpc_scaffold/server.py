"""A gRPC server's life: build, serve with health and reflection, stop gracefully.

    async with GrpcServer(settings, verifier) as server:
        server.add(servicer, add_XServicer_to_server, "ganshou.x.v1.XService")
        await server.serve_until_signal()
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from ganshou_common import logs
from ganshou_common.grpc_scaffold.auth import Role, TokenVerifier
from ganshou_common.grpc_scaffold.interceptor import ScaffoldInterceptor
from ganshou_common.grpc_scaffold.policy import declared_roles

log = logs.get("ganshou.grpc")


@dataclass(frozen=True)
class ServerSettings:
    host: str = "0.0.0.0"
    port: int = 50051
    grace_s: float = 10.0
    max_concurrent_rpcs: int = 1000  # beyond this, callers get RESOURCE_EXHAUSTED
    tls_cert: bytes | None = None
    tls_key: bytes | None = None
    tls_client_ca: bytes | None = None  # set for mTLS: clients must present a certificate


class GrpcServer:
    def __init__(self, settings: ServerSettings, verifier: TokenVerifier):
        self.settings = settings
        self._verifier = verifier
        self._roles: dict[str, frozenset[Role]] = {}
        self._services: list[str] = []
        self._registrations: list[tuple[Any, Callable[[Any, grpc.aio.Server], None]]] = []
        self.health = HealthServicer()
        self._server: grpc.aio.Server | None = None
        self.port = settings.port
        self._stop = asyncio.Event()

    def add(self, servicer: Any, register: Callable[[Any, grpc.aio.Server], None], full_name: str) -> None:
        """Register a servicer before start; its @admits declarations become the policy."""
        self._roles.update(declared_roles(servicer, full_name))
        self._services.append(full_name)
        self._registrations.append((servicer, register))

    async def start(self) -> None:
        server = grpc.aio.server(
            interceptors=[ScaffoldInterceptor(self._verifier, self._roles)],
            maximum_concurrent_rpcs=self.settings.max_concurrent_rpcs,
            options=[("grpc.so_reuseport", 0)],
        )
        for servicer, register in self._registrations:
            register(servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            [*self._services, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
            server,
        )
        address = f"{self.settings.host}:{self.settings.port}"
        s = self.settings
        if s.tls_cert and s.tls_key:
            creds = grpc.ssl_server_credentials([(s.tls_key, s.tls_cert)], root_certificates=s.tls_client_ca,
                                                require_client_auth=s.tls_client_ca is not None)
            self.port = server.add_secure_port(address, creds)
        else:
            self.port = server.add_insecure_port(address)
        await server.start()
        self._server = server
        for name in ("", *self._services):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("grpc_serving", port=self.port, services=self._services, tls=bool(s.tls_cert))

    def request_stop(self) -> None:
        self._stop.set()

    async def serve_until_signal(self) -> None:
        """Serve until SIGTERM/SIGINT (or request_stop), then stop gracefully."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        await self._stop.wait()
        await self.stop()

    async def stop(self) -> None:
        """NOT_SERVING first, so load balancers drain us; then let in-flight RPCs finish."""
        if self._server is None:
            return
        await self.health.enter_graceful_shutdown()
        log.info("grpc_stopping", grace_s=self.settings.grace_s)
        await self._server.stop(self.settings.grace_s)
        self._server = None

    async def __aenter__(self) -> "GrpcServer":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
