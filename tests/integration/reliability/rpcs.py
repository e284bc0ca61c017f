"""Every RPC of the four services, from their proto descriptors and the roles each one
declares (`@admits`), with requests filled in from a town's known ids by field name."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message

from ganshou.casework.v1 import casework_service_pb2, casework_service_pb2_grpc
from ganshou.intake.v1 import intake_service_pb2, intake_service_pb2_grpc
from ganshou.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from ganshou.partner_resource.v1 import partner_resource_service_pb2, partner_resource_service_pb2_grpc
from ganshou_casework.api.servicer import CaseworkServicer
from ganshou_common.grpc_scaffold.auth import Role
from ganshou_common.grpc_scaffold.policy import declared_roles
from ganshou_intake.api.servicer import IntakeServicer
from ganshou_metrics.api.servicer import MetricsServicer
from ganshou_partner_resource.api.servicer import PartnerResourceServicer

# system process → (file descriptor module, stub class, servicer class)
SERVICES = {
    "intake": (intake_service_pb2, intake_service_pb2_grpc.IntakeServiceStub, IntakeServicer),
    "casework": (casework_service_pb2, casework_service_pb2_grpc.CaseworkServiceStub, CaseworkServicer),
    "partner": (partner_resource_service_pb2, partner_resource_service_pb2_grpc.PartnerResourceServiceStub,
                PartnerResourceServicer),
    "metrics": (metrics_service_pb2, metrics_service_pb2_grpc.MetricsServiceStub, MetricsServicer),
}


@dataclass(frozen=True)
class Rpc:
    process: str
    method: MethodDescriptor
    roles: frozenset[Role]

    @property
    def name(self) -> str:
        return self.method.name

    @property
    def command(self) -> bool:
        return "request_id" in self.method.input_type.fields_by_name

    @property
    def streaming(self) -> tuple[bool, bool]:
        return self.method.client_streaming, self.method.server_streaming

    def request_class(self) -> type[Message]:
        from google.protobuf import message_factory

        return message_factory.GetMessageClass(self.method.input_type)

    def callable(self, channel: grpc.Channel):
        stub = SERVICES[self.process][1](channel)
        return getattr(stub, self.name)


def every_rpc() -> Iterator[Rpc]:
    for process, (module, _, servicer) in SERVICES.items():
        (service,) = module.DESCRIPTOR.services_by_name.values()
        declared = declared_roles(servicer.__new__(servicer), service.full_name)
        for m in service.methods:
            yield Rpc(process, m, declared.get(f"/{service.full_name}/{m.name}", frozenset()))


TEXT = {"phone": "13800138000", "caller_phone": "13800138000", "id_number": "11010519491231002X",
        "date": "2026-11-28", "period": "2026-11"}


def filled(rpc: Rpc, ids: dict[str, str]) -> Message:
    """A plausible request: id fields name the town's entities (by field name), other
    fields get ordinary values, and a fresh request id — enough for most commands to pass
    their own checks, so the matrix reaches the authorisation behind them."""
    req = rpc.request_class()()
    _fill(req, ids, depth=0)
    if "request_id" in req.DESCRIPTOR.fields_by_name:
        req.request_id = uuid.uuid4().hex
    return req


def _fill(msg: Message, ids: dict[str, str], depth: int) -> None:
    from datetime import UTC, datetime, timedelta

    for f in msg.DESCRIPTOR.fields:
        name = f.name
        if f.type == FieldDescriptor.TYPE_MESSAGE:
            if depth > 2 or f.message_type.full_name == "google.protobuf.Timestamp" and name not in (
                    "starts_at", "ends_at"):
                continue
            if f.message_type.full_name == "google.protobuf.Timestamp":
                getattr(msg, name).FromDatetime(datetime.now(UTC) + timedelta(days=-1 if name == "starts_at" else 1))
                continue
            if f.message_type.GetOptions().map_entry:
                continue
            child = getattr(msg, name).add() if f.is_repeated else getattr(msg, name)
            _fill(child, ids, depth + 1)
            if f.message_type.name == "Money":
                child.fen = 100
            continue
        if f.is_repeated:
            if f.type == FieldDescriptor.TYPE_ENUM:
                getattr(msg, name).append(1)
            continue
        if f.type == FieldDescriptor.TYPE_STRING:
            value = ids.get(name) or TEXT.get(name) or ("" if name.endswith("_id") or name.endswith("token") else "测试")
            setattr(msg, name, value)
        elif f.type == FieldDescriptor.TYPE_ENUM:
            setattr(msg, name, 1)
        elif f.type in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64) and not name.startswith("page"):
            setattr(msg, name, 1)
