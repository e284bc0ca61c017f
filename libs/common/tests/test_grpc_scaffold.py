"""The gRPC scaffold end to end: a real server, grpcurl and grpcio clients, promtool."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ganshou.testing.v1 import scaffold_pb2, scaffold_pb2_grpc
from ganshou_common.errors import FieldViolation, InvalidArgument, Unauthenticated
from ganshou_common.grpc_scaffold.auth import Role, TokenVerifier, mint_token
from ganshou_common.grpc_scaffold.interceptor import current_principal
from ganshou_common.grpc_scaffold.policy import admits
from ganshou_common.grpc_scaffold.errors import field_violations
from ganshou_common.grpc_scaffold.server import GrpcServer, ServerSettings
from ganshou_common.metrics_http import serve_metrics
from ganshou_common.testing.procs import free_port


SERVICE = "ganshou.testing.v1.ScaffoldTestService"


class ScaffoldServicer(scaffold_pb2_grpc.ScaffoldTestServiceServicer):
    @admits(Role.TOWN_ADMIN, Role.COMMUNITY_CADRE)
    async def RecordGreeting(self, request, context):
        violations = []
        if not request.community_id:
            violations.append(FieldViolation("community_id", "required"))
        if not request.name.strip():
            violations.append(FieldViolation("name", "required: who is greeted"))
        if violations:
            raise InvalidArgument(violations)
        who = current_principal()
        who.require_community(request.community_id)
        return scaffold_pb2.RecordGreetingResponse(greeting=f"hello {request.name}", recorded_by=who.subject)

    @admits(*Role)
    async def Explode(self, request, context):
        raise ZeroDivisionError("secret internals")


SECRET = "test-secret-0123456789-abcdefghijklmnop"
ROOT = Path(__file__).resolve().parents[3]


def tool(name: str) -> str:
    found = shutil.which(name) or str(ROOT / ".run/bin" / name)
    if not os.path.exists(found):
        pytest.fail(f"{name} is not installed: run `make install`")
    return found


@pytest.fixture(scope="module")
def metrics_port() -> int:
    port = free_port()
    serve_metrics(port, "127.0.0.1")
    return port


@pytest.fixture
async def server() -> AsyncIterator[GrpcServer]:
    srv = GrpcServer(ServerSettings(host="127.0.0.1", port=0, grace_s=2), TokenVerifier(secret=SECRET))
    srv.add(ScaffoldServicer(), scaffold_pb2_grpc.add_ScaffoldTestServiceServicer_to_server, SERVICE)
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def stub(server: GrpcServer) -> AsyncIterator[scaffold_pb2_grpc.ScaffoldTestServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield scaffold_pb2_grpc.ScaffoldTestServiceStub(channel)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def cadre(*communities: str) -> str:
    return mint_token(SECRET, "cadre-1", Role.COMMUNITY_CADRE, list(communities))


async def code_of(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value


async def grpcurl(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(tool("grpcurl"), *args, stdout=subprocess.PIPE,
                                                stderr=subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_grpcurl_lists_the_service_by_reflection_and_checks_health(server: GrpcServer) -> None:
    rc, out = await grpcurl("-plaintext", f"127.0.0.1:{server.port}", "list")
    assert rc == 0 and SERVICE in out and "grpc.health.v1.Health" in out
    rc, out = await grpcurl("-plaintext", f"127.0.0.1:{server.port}", "describe", SERVICE)
    assert rc == 0 and "rpc RecordGreeting" in out, out
    rc, out = await grpcurl("-plaintext", f"127.0.0.1:{server.port}", "grpc.health.v1.Health/Check")
    assert rc == 0 and json.loads(out)["status"] == "SERVING"


async def test_grpcurl_calls_with_a_token(server: GrpcServer) -> None:
    rc, out = await grpcurl("-plaintext", "-H", f"authorization: Bearer {cadre('c-01')}",
                            "-d", '{"request_id": "r1", "community_id": "c-01", "name": "Wang"}',
                            f"127.0.0.1:{server.port}", f"{SERVICE}/RecordGreeting")
    assert rc == 0, out
    assert json.loads(out) == {"greeting": "hello Wang", "recorded_by": "cadre-1"}


async def test_a_cadre_acts_in_their_own_community(stub) -> None:
    reply = await stub.RecordGreeting(scaffold_pb2.RecordGreetingRequest(request_id="r", community_id="c-01", name="Li"),
                                      metadata=bearer(cadre("c-01")))
    assert reply.greeting == "hello Li"


@pytest.mark.parametrize("token", [
    None,
    "not-a-jwt",
    mint_token("some-other-secret-0123456789-abcdefgh", "x", Role.TOWN_ADMIN),
    mint_token(SECRET, "x", Role.TOWN_ADMIN, ttl_s=-3600),
    jwt.encode({"sub": "x", "role": "town_admin", "iss": "ganshou", "aud": "ganshou", "exp": 2**40}, None,
               algorithm="none"),
], ids=["missing", "garbage", "wrong-signature", "expired", "alg-none"])
async def test_bad_tokens_are_unauthenticated(stub, token: str | None) -> None:
    md = bearer(token) if token else ()
    err = await code_of(stub.RecordGreeting(scaffold_pb2.RecordGreetingRequest(request_id="r", community_id="c-01",
                                                                               name="Li"), metadata=md))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_wrong_scope_or_role_is_permission_denied(stub) -> None:
    req = scaffold_pb2.RecordGreetingRequest(request_id="r", community_id="c-01", name="Li")
    err = await code_of(stub.RecordGreeting(req, metadata=bearer(cadre("c-02"))))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "c-01" in err.details()
    partner = mint_token(SECRET, "p", Role.PARTNER_STAFF, partner_id="p-1")
    err = await code_of(stub.RecordGreeting(req, metadata=bearer(partner)))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_bad_field_is_invalid_argument_naming_the_field(stub) -> None:
    req = scaffold_pb2.RecordGreetingRequest(request_id="r", community_id="c-01", name="  ")
    err = await code_of(stub.RecordGreeting(req, metadata=bearer(cadre("c-01"))))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(err) == {"name": "required: who is greeted"}


async def test_an_unexpected_error_is_internal_with_a_correlation_id_and_no_internals(stub) -> None:
    err = await code_of(stub.Explode(scaffold_pb2.ExplodeRequest(),
                                     metadata=(*bearer(cadre("c-01")), ("x-correlation-id", "corr-42"))))
    assert err.code() == grpc.StatusCode.INTERNAL
    assert "corr-42" in err.details() and "secret internals" not in err.details()
    assert "Traceback" not in err.details()


async def test_red_metrics_are_exposed_and_pass_promtool(stub, metrics_port: int) -> None:
    req = scaffold_pb2.RecordGreetingRequest(request_id="r", community_id="c-01", name="Li")
    await stub.RecordGreeting(req, metadata=bearer(cadre("c-01")))
    await code_of(stub.RecordGreeting(req, metadata=bearer(cadre("c-09"))))
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    assert ('grpc_server_handled_total{grpc_code="OK",grpc_method="RecordGreeting",'
            'grpc_service="ganshou.testing.v1.ScaffoldTestService",grpc_type="unary"}') in text
    assert 'grpc_code="PERMISSION_DENIED"' in text
    assert "grpc_server_started_total" in text and "grpc_server_handling_seconds_bucket" in text
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


async def test_graceful_stop_reports_not_serving_first(server: GrpcServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        assert (await health.Check(health_pb2.HealthCheckRequest())).status == health_pb2.HealthCheckResponse.SERVING
        await server.health.enter_graceful_shutdown()
        assert (await health.Check(health_pb2.HealthCheckRequest(service=SERVICE))).status == \
            health_pb2.HealthCheckResponse.NOT_SERVING


def test_tokens_from_an_identity_provider_verify_with_its_jwks(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "idp-1", "alg": "RS256", "use": "sig"}]}))
    verifier = TokenVerifier(jwks_path=tmp_path / "jwks.json")
    claims = {"sub": "wang", "role": "auditor", "iss": "ganshou", "aud": "ganshou", "exp": 2**40}
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "idp-1"})
    assert verifier.verify(token).role == Role.AUDITOR
    with pytest.raises(Exception, match="invalid token|unknown signing key"):
        verifier.verify(mint_token(SECRET, "x", Role.TOWN_ADMIN))  # HS256 with a guessable secret: refused


def test_database_outages_are_unavailable_not_internal() -> None:
    import asyncpg

    from ganshou_common.grpc_scaffold.errors import status_code_of

    assert status_code_of(ConnectionRefusedError()) == grpc.StatusCode.UNAVAILABLE
    assert status_code_of(asyncpg.CannotConnectNowError()) == grpc.StatusCode.UNAVAILABLE
    assert status_code_of(asyncpg.InterfaceError("connection is closed")) == grpc.StatusCode.UNAVAILABLE
    assert status_code_of(ZeroDivisionError()) is None  # a bug stays INTERNAL


def test_a_verified_token_is_reused_only_until_it_expires() -> None:
    verifier = TokenVerifier(secret=SECRET, leeway_s=0)
    token = mint_token(SECRET, "cadre-1", Role.COMMUNITY_CADRE, ["c-1"], ttl_s=1)
    first = verifier.verify(token)
    assert verifier.verify(token) is first  # from the cache: no second signature check
    time.sleep(2.05)  # past `exp`, which counts whole seconds
    with pytest.raises(Unauthenticated):
        verifier.verify(token)
