"""The authorisation matrix, generated from each RPC's declared roles: every RPC × every
role × in scope and out of scope — allowed where declared, PERMISSION_DENIED elsewhere;
no list or watch shows another community's items; bad tokens are refused; with TLS on,
plaintext is refused, and with mTLS so is a client without a valid certificate."""

from __future__ import annotations

import asyncio
import datetime
import os
import uuid
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ganshou.casework.v1 import casework_service_pb2 as capi
from ganshou.casework.v1 import events_pb2 as cev
from ganshou.intake.v1 import intake_service_pb2 as iapi
from ganshou_casework.app.handlers import case_id_for
from ganshou_common.grpc_scaffold.auth import Role, mint_token
from ganshou_common.testing.procs import free_port, kill, spawn_module

from ..system import SECRET
from .loadgen import Client, Ledger, Mix, rid
from .rpcs import Rpc, every_rpc, filled

pytestmark = pytest.mark.integration
SCOPED = (Role.COMMUNITY_CADRE, Role.PARTNER_STAFF)
# The town's directory of partners, their offerings and the aid programmes is open to
# every role that may read it: it names no resident and belongs to no one community.
DIRECTORY = {"GetPartner", "ListPartners", "GetOffering", "ListOfferings", "ListAidProgrammes", "GetAidProgramme"}
# Refused for its content whoever asks (an id the town has not got): authorisation is not
# reached, and the case is counted as such rather than passed.
CONTENT = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}
NOT_ALLOWED = {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INTERNAL,
               grpc.StatusCode.UNKNOWN}


def token(role: Role, community: str = "", partner: str = "", **claims) -> tuple:
    return (("authorization", "Bearer " + mint_token(SECRET, f"matrix-{role}", role,
                                                     [community] if community else [], partner)),)


def call(channel: grpc.Channel, rpc: Rpc, request, metadata) -> grpc.StatusCode:
    fn = rpc.callable(channel)
    try:
        match rpc.streaming:
            case (True, False):
                fn(iter([request]), metadata=metadata, timeout=5)
            case (False, True):
                stream = fn(request, metadata=metadata, timeout=3)
                next(stream)
                stream.cancel()
            case _:
                fn(request, metadata=metadata, timeout=5)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def town_ids(rsystem) -> tuple[dict, dict, str]:
    """Ids of community A's entities (and B's), the partner paired with them."""
    client = Client({s: rsystem.procs[s].grpc_port for s in ("intake", "casework", "partner")}, rsystem.auth(),
                    Ledger())
    try:
        mix = await Mix.set_up(client, 2, 2)
        out = []
        for c in mix.town.communities:
            household, resident = c.households[0]
            demand = await client.call("intake", "RaiseDemand", iapi.RaiseDemandRequest(
                request_id=rid(), community_id=c.id, household_id=household, resident_id=resident, channel=3,
                urgency=1, category="water", description="停水"))
            case_id = case_id_for(demand.demand_id)
            await client.until("casework", "GetCase", capi.GetCaseRequest(case_id=case_id))
            # Partner staff act on the cases assigned to their partner.
            await client.call("casework", "RespondToCase", capi.RespondToCaseRequest(request_id=rid(), case_id=case_id))
            await client.call("casework", "AssignCase", capi.AssignCaseRequest(
                request_id=rid(), case_id=case_id, assignee_kind=cev.ASSIGNEE_KIND_PARTNER,
                assignee_id=mix.town.partner))
            out.append({"community_id": c.id, "household_id": household, "resident_id": resident,
                        "campaign_id": c.campaign, "demand_id": demand.demand_id, "case_id": case_id,
                        "primary_case_id": case_id, "deliberation_id": c.deliberation,
                        "partner_id": mix.town.partner, "offering_id": mix.town.offering,
                        "programme_id": mix.town.programme})
        return out[0], out[1], mix.town.partner
    finally:
        await client.close()


async def test_every_rpc_every_role_in_and_out_of_scope(rsystem, report) -> None:
    a, b, partner = await town_ids(rsystem)
    rpcs = list(every_rpc())
    assert all(r.roles for r in rpcs), [r.name for r in rpcs if not r.roles]
    channels = {p: grpc.insecure_channel(f"127.0.0.1:{rsystem.procs[p].grpc_port}") for p in
                ("intake", "casework", "partner", "metrics")}
    wrong: list[str] = []
    directory: list[str] = []
    not_reached: list[str] = []
    cases = 0

    def run() -> None:
        nonlocal cases
        # Out of scope and undeclared first: they must change nothing, so the in-scope
        # calls after them still find the town as it was.
        for rpc in rpcs:
            for role in Role:
                if role in rpc.roles and role not in SCOPED:
                    continue
                if role in rpc.roles:  # declared, but for another community / partner
                    md = token(role, community=b["community_id"], partner=f"p-{uuid.uuid4().hex[:6]}")
                    kind = "out of scope"
                else:
                    md = token(role, community=a["community_id"], partner=partner)
                    kind = "undeclared"
                request = filled(rpc, a)
                code = call(channels[rpc.process], rpc, request, md)
                cases += 1
                if code == grpc.StatusCode.PERMISSION_DENIED:
                    continue
                if kind == "out of scope" and rpc.name in DIRECTORY and code == grpc.StatusCode.OK:
                    directory.append(f"{rpc.name} {role}")
                elif rpc.name == "ImportHouseholds" and code == grpc.StatusCode.OK:
                    continue  # rows are judged one by one: see test_an_import_into_another_community
                elif code in CONTENT and call(channels[rpc.process], rpc, request, token(Role.TOWN_ADMIN)) == code:
                    not_reached.append(f"{rpc.name} {role} {kind}: {code.name}")
                else:
                    wrong.append(f"{rpc.name} {role} {kind}: {code.name}")
        for rpc in rpcs:
            for role in rpc.roles:
                md = token(role, community=a["community_id"], partner=partner)
                request = filled(rpc, a)
                if rpc.name == "AssignCase":  # keep the case with the partner, for its staff's calls
                    request.assignee_kind, request.assignee_id = cev.ASSIGNEE_KIND_PARTNER, partner
                code = call(channels[rpc.process], rpc, request, md)
                cases += 1
                if code in NOT_ALLOWED:
                    wrong.append(f"{rpc.name} {role} in scope: {code.name}")

    await asyncio.to_thread(run)
    for ch in channels.values():
        ch.close()
    report.add("Authorisation matrix", rpcs=len(rpcs), roles=len(Role), cases=cases, wrong=wrong or "none",
               directory_reads_allowed=len(directory), refused_for_content_before_authorisation=not_reached)
    assert not wrong, "\n".join(wrong)
