"""The authorisation matrix, generated from each RPC's declared roles: every RPC × every
role × in scope and out of scope — allowed where declared, PERMISSION_DENIED elsewhere;
no list or watch shows another community's items; bad tokens are refused; with TLS on,
plaintext is refused, and with mTLS so is a client without a valid certificate."""

from __future__ import annotations

import asyncio
import datetime
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
# every role that may read it: it names no resident and belongs to no one community. So is
# its list of communities (a cadre's shows the communities they serve).
DIRECTORY = {"GetPartner", "ListPartners", "GetOffering", "ListOfferings", "ListAidProgrammes", "GetAidProgramme",
             "ListCommunities"}
# Refused for its content whoever asks (an id the town has not got): authorisation is not
# reached, and the case is counted as such rather than passed.
CONTENT = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}
NOT_ALLOWED = {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INTERNAL,
               grpc.StatusCode.UNKNOWN}


def token(role: Role, community: str = "", partner: str = "") -> tuple:
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
            await client.call("casework", "TriageCase", capi.TriageCaseRequest(request_id=rid(), case_id=case_id,
                                                                                track=cev.TRACK_SOLVE_SOON))
            # until: casework learns of the partner, registered moments ago, from its events.
            await client.until("casework", "AssignCase", capi.AssignCaseRequest(
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


def bad_tokens() -> dict[str, str]:
    now = int(datetime.datetime.now(datetime.UTC).timestamp())
    claims = {"iss": "ganshou", "aud": "ganshou", "sub": "matrix", "role": "town_admin", "iat": now, "exp": now + 600}
    return {
        "expired": jwt.encode({**claims, "iat": now - 7200, "exp": now - 3600}, SECRET, algorithm="HS256"),
        "wrongly signed": jwt.encode(claims, "not-the-secret-0123456789abcdef!", algorithm="HS256"),
        "alg none": jwt.encode(claims, None, algorithm="none"),
    }


async def test_bad_tokens_and_other_communities_lists(rsystem, report) -> None:
    a, b, partner = await town_ids(rsystem)
    rpcs = list(every_rpc())
    channels = {p: grpc.insecure_channel(f"127.0.0.1:{rsystem.procs[p].grpc_port}") for p in
                ("intake", "casework", "partner", "metrics")}
    wrong, leaks, checked = [], [], 0

    def communities_in(msg) -> set[str]:
        out = set()
        for f, v in msg.ListFields():
            if f.name in ("community_id", "communities", "community_ids", "communities_served") and \
                    f.type == f.TYPE_STRING:
                out |= set(v) if f.is_repeated else {v}
            elif f.type == f.TYPE_MESSAGE and not f.message_type.GetOptions().map_entry:
                for item in (v if f.is_repeated else [v]):
                    out |= communities_in(item)
        return out

    def run() -> None:
        nonlocal checked
        for rpc in rpcs:
            for kind, tok in bad_tokens().items():
                code = call(channels[rpc.process], rpc, filled(rpc, a), (("authorization", f"Bearer {tok}"),))
                if code != grpc.StatusCode.UNAUTHENTICATED:
                    wrong.append(f"{rpc.name} with an {kind} token: {code.name}")
        cadre = token(Role.COMMUNITY_CADRE, community=a["community_id"])
        for rpc in rpcs:
            if not (rpc.name.startswith(("List", "Watch")) or rpc.name == "GetFigures"):
                continue
            for community in ("", b["community_id"]):
                request = filled(rpc, {**a, "community_id": community})
                fn = rpc.callable(channels[rpc.process])
                try:
                    if rpc.streaming == (False, True):
                        stream = fn(request, metadata=cadre, timeout=3)
                        reply = next(stream)
                        stream.cancel()
                    else:
                        reply = fn(request, metadata=cadre, timeout=5)
                except grpc.RpcError as exc:
                    if exc.code() in NOT_ALLOWED - {grpc.StatusCode.PERMISSION_DENIED}:
                        wrong.append(f"{rpc.name} for community {community!r}: {exc.code().name}")
                    continue
                checked += 1
                seen = communities_in(reply) - {"", a["community_id"]}
                if seen:
                    leaks.append(f"{rpc.name} asked for {community!r} shows {sorted(seen)}")

    await asyncio.to_thread(run)
    for ch in channels.values():
        ch.close()
    report.add("Tokens and lists", rpcs=len(rpcs), bad_token_cases=len(rpcs) * 3, list_and_watch_answers=checked,
               wrong=wrong or "none", leaks=leaks or "none")
    assert not wrong, "\n".join(wrong)
    assert not leaks, "\n".join(leaks)


def _cert(name: str, issuer_key, issuer_name, key, ca: bool = False, sans=()) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(issuer_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        import ipaddress

        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pki(folder: Path) -> dict[str, bytes]:
    def pem_key(k) -> bytes:
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())

    out = {}
    for ca_name in ("ca", "rogue-ca"):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
        ca = _cert(ca_name, ca_key, ca_subject, ca_key, ca=True)
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        role = "server" if ca_name == "ca" else "rogue"
        leaf = _cert(role, ca_key, ca_subject, leaf_key, sans=(1,))
        client_key = ec.generate_private_key(ec.SECP256R1())
        client = _cert(f"{ca_name}-client", ca_key, ca_subject, client_key)
        out[f"{ca_name}.pem"] = ca.public_bytes(serialization.Encoding.PEM)
        out[f"{role}.pem"], out[f"{role}.key"] = leaf.public_bytes(serialization.Encoding.PEM), pem_key(leaf_key)
        out[f"{ca_name}-client.pem"] = client.public_bytes(serialization.Encoding.PEM)
        out[f"{ca_name}-client.key"] = pem_key(client_key)
    for name, data in out.items():
        (folder / name).write_bytes(data)
    return out


def _health(target: str, credentials: grpc.ChannelCredentials | None) -> str:
    channel = grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    except grpc.RpcError as exc:
        return exc.code().name
    finally:
        channel.close()


async def test_tls_refuses_plaintext_and_mtls_refuses_clients_without_a_valid_certificate(rsystem, tmp_path,
                                                                                           report) -> None:
    pki = _pki(tmp_path)
    results = {}
    for mode in ("tls", "mtls"):
        port = free_port()
        env = {**rsystem.procs["intake"].env, "GRPC_PORT": str(port), "METRICS_PORT": str(free_port()),
               "GRPC_TLS_CERT": str(tmp_path / "server.pem"), "GRPC_TLS_KEY": str(tmp_path / "server.key")}
        if mode == "mtls":
            env["GRPC_TLS_CLIENT_CA"] = str(tmp_path / "ca.pem")
        proc = spawn_module("ganshou_intake", env, tmp_path / f"intake-{mode}.log", "serve")
        target = f"localhost:{port}"
        trust = grpc.ssl_channel_credentials(root_certificates=pki["ca.pem"])
        client = grpc.ssl_channel_credentials(pki["ca.pem"], pki["ca-client.key"], pki["ca-client.pem"])
        rogue = grpc.ssl_channel_credentials(pki["ca.pem"], pki["rogue-ca-client.key"], pki["rogue-ca-client.pem"])
        try:
            good = client if mode == "mtls" else trust
            async with asyncio.timeout(60):
                while await asyncio.to_thread(_health, target, good) != "SERVING":
                    assert proc.poll() is None, (tmp_path / f"intake-{mode}.log").read_text()[-2000:]
                    await asyncio.sleep(0.5)
            got = {"plaintext": await asyncio.to_thread(_health, target, None),
                   "TLS, trusted server": await asyncio.to_thread(_health, target, trust)}
            if mode == "mtls":
                got["client certificate from another CA"] = await asyncio.to_thread(_health, target, rogue)
                got["valid client certificate"] = await asyncio.to_thread(_health, target, client)
            results[mode] = got
        finally:
            kill(proc)
    report.add("TLS and mTLS", **results)
    assert results["tls"] == {"plaintext": "UNAVAILABLE", "TLS, trusted server": "SERVING"}
    assert results["mtls"] == {"plaintext": "UNAVAILABLE", "TLS, trusted server": "UNAVAILABLE",
                               "client certificate from another CA": "UNAVAILABLE",
                               "valid client certificate": "SERVING"}
