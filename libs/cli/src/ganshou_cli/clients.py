"""gRPC channels and credentials for the command line, from the environment:
GANSHOU_INTAKE, GANSHOU_CASEWORK, GANSHOU_PARTNER, GANSHOU_METRICS (host:port; local
defaults), and GANSHOU_TOKEN (or GANSHOU_TOKEN_SECRET to mint a local admin token)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import grpc

from ganshou.casework.v1 import casework_service_pb2_grpc as casework
from ganshou.intake.v1 import intake_service_pb2_grpc as intake
from ganshou.metrics.v1 import metrics_service_pb2_grpc as metrics
from ganshou.partner_resource.v1 import partner_resource_service_pb2_grpc as partner
from ganshou_common.grpc_scaffold.auth import Role, mint_token

DEFAULTS = {"intake": "127.0.0.1:50051", "casework": "127.0.0.1:50052", "partner": "127.0.0.1:50053",
            "metrics": "127.0.0.1:50054"}


def address(service: str) -> str:
    return os.environ.get(f"GANSHOU_{service.upper()}", DEFAULTS[service])


def token(role: Role = Role.TOWN_ADMIN, communities: list[str] | None = None, subject: str = "ganshou-cli") -> str:
    if os.environ.get("GANSHOU_TOKEN"):
        return os.environ["GANSHOU_TOKEN"]
    secret = os.environ.get("GANSHOU_TOKEN_SECRET")
    if not secret:
        raise SystemExit("set GANSHOU_TOKEN, or GANSHOU_TOKEN_SECRET to mint a local token "
                         "(make run keeps it in .run/secrets.env)")
    return mint_token(secret, subject, role, communities)


@dataclass
class Clients:
    intake: intake.IntakeServiceStub
    casework: casework.CaseworkServiceStub
    partner: partner.PartnerResourceServiceStub
    metrics: metrics.MetricsServiceStub
    metadata: tuple[tuple[str, str], ...]
    channels: list[grpc.aio.Channel]

    @classmethod
    def connect(cls, bearer: str | None = None) -> "Clients":
        chans = {s: grpc.aio.insecure_channel(address(s)) for s in DEFAULTS}
        return cls(intake.IntakeServiceStub(chans["intake"]), casework.CaseworkServiceStub(chans["casework"]),
                   partner.PartnerResourceServiceStub(chans["partner"]), metrics.MetricsServiceStub(chans["metrics"]),
                   (("authorization", f"Bearer {bearer or token()}"),), list(chans.values()))

    async def close(self) -> None:
        for ch in self.channels:
            await ch.close()


async def every_page(ask, items: str) -> list:
    """Every page of a list: `ask(page_token)` is one call; `items` its repeated field."""
    found, page_token = [], ""
    while True:
        page = await ask(page_token)
        found += getattr(page, items)
        if not (page_token := page.next_page_token):
            return found
