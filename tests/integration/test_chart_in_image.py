"""The chart's wiring, proved without a cluster: render it, then run every Deployment's
container command and args in the built image with podman, with the rendered environment
pointed at the local Kafka and PostgreSQL; each becomes SERVING on its gRPC health port
(servers) and serves metrics. The hook Jobs (migrations, topics) run the same way first."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import urllib.request
import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ganshou_common.testing.fixtures import fresh_database
from ganshou_common.testing.procs import free_port

from .test_figures_end_to_end import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/ganshou:test"


def podman_env() -> dict[str, str]:
    run = ROOT / ".run" / "image"
    return {**os.environ, "CONTAINERS_STORAGE_CONF": str(run / "storage.conf"),
            "CONTAINERS_CONF": str(run / "containers.conf")}


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], env=podman_env(), capture_output=True, text=True, check=check,
                          timeout=300)


@pytest.fixture(scope="module")
def image() -> str:
    """Build the image (tools/image.sh: debootstrap, podman import, buildah), once."""
    out = subprocess.run(["bash", str(ROOT / "tools/image.sh"), "test"], capture_output=True, text=True,
                         timeout=1200)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return IMAGE


def render(kafka: str) -> list[dict]:
    helm = str(ROOT / ".run/bin/helm")
    out = subprocess.run([helm, "template", "town", str(ROOT / "deploy/helm/ganshou"), "--kube-version", "1.33.0",
                          "--set", f"kafka.bootstrapServers={kafka}", "--set", "auth.tokenSecret=ganshou-token"],
                         capture_output=True, text=True, check=True)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def container_of(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]["containers"][0]


def environment(container: dict, secrets: dict[tuple[str, str], str], overrides: dict[str, str]) -> dict[str, str]:
    env = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = secrets[(ref["name"], ref["key"])]
    return {**env, **overrides}


def run(name: str, container: dict, env: dict[str, str], detach: bool) -> subprocess.CompletedProcess[str]:
    args = ["run", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges"]
    args += ["-d"] if detach else ["--rm"]
    for k, v in env.items():
        args += ["-e", f"{k}={v}"]
    return podman(*args, IMAGE, *container["command"], *container.get("args", []), check=False)


def scrape(port: int) -> bytes:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    except OSError:
        return b""


async def serving(port: int) -> bool:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        reply = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2)
        return reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_every_deployment_runs_in_the_image_and_serves(image: str, pg_port: int, kafka_bootstrap: str) -> None:
    docs = render(kafka_bootstrap)
    run_id = uuid.uuid4().hex[:6]
    names: list[str] = []
    async with AsyncExitStack() as stack:
        dsns = {s: await stack.enter_async_context(fresh_database(pg_port)) for s in
                ("ganshou-intake-app", "ganshou-casework-app", "ganshou-partner-resource-app")}
        secrets = {(s, "uri"): dsn for s, dsn in dsns.items()}
        secrets[("ganshou-token", "secret")] = "chart-test-secret-0123456789abcdef"
        secrets[("ganshou-pii", "master-key")] = base64.b64encode(os.urandom(32)).decode()
        try:
            # The hook Jobs first, as Helm runs them: topics, then each service's migrations.
            for job in sorted((d for d in docs if d["kind"] == "Job"), key=lambda d: d["metadata"]["name"]):
                c = job["spec"]["template"]["spec"]["containers"][0]
                out = await asyncio.to_thread(run, f"job-{run_id}-{job['metadata']['name']}", c,
                                              environment(c, secrets, {}), False)
                assert out.returncode == 0, f"{job['metadata']['name']}: {out.stdout}{out.stderr}"
            ports = {}
            for d in (d for d in docs if d["kind"] == "Deployment"):
                c = container_of(d)
                name = f"{d['metadata']['name']}-{run_id}"
                grpc_port, metrics_port = free_port(), free_port()
                # Only what a shared loopback needs changes: ports, and consumer groups apart
                # from a developer's running system on the same broker.
                env = environment(c, secrets, {"GRPC_PORT": str(grpc_port), "GRPC_HOST": "127.0.0.1",
                                               "METRICS_PORT": str(metrics_port),
                                               "CASEWORK_CONSUMER_GROUP": f"chart-{run_id}",
                                               "PARTNER_CONSUMER_GROUP": f"chart-{run_id}",
                                               "METRICS_GENERATION": f"chart-{run_id}"})
                out = await asyncio.to_thread(run, name, c, env, True)
                assert out.returncode == 0, out.stderr
                names.append(name)
                ports[name] = (any(p["name"] == "grpc" for p in c["ports"]), grpc_port, metrics_port)
            assert len(ports) == 9
            for name, (has_grpc, grpc_port, metrics_port) in ports.items():
                if has_grpc:
                    await eventually(lambda: serving(grpc_port), timeout=90)
                text = await eventually(lambda: asyncio.to_thread(scrape, metrics_port), timeout=90)
                assert b"# HELP" in text, name
        finally:
            for name in names:
                logs = podman("logs", "--tail", "20", name, check=False)
                if logs.returncode == 0 and "Traceback" in logs.stdout + logs.stderr:
                    print(f"--- {name}\n{logs.stdout[-2000:]}{logs.stderr[-2000:]}")
                podman("rm", "-f", "-t", "5", name, check=False)
