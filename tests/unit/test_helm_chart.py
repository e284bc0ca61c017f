"""The Helm chart, proved without a cluster: lint, every example values file rendered and
validated against Kubernetes 1.29 and 1.33, typos refused by the schema, and the wiring
every Deployment must have."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy/helm/ganshou"
EXAMPLES = [None, *sorted((CHART / "examples").glob("*.yaml"))]
CRDS = ["--api-versions", "kafka.strimzi.io/v1beta2", "--api-versions", "monitoring.coreos.com/v1"]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("helm") or str(ROOT / ".run/bin/helm")
    if not os.path.exists(exe):
        pytest.fail("helm is not installed: run `make install`")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)


def render(values: Path | None, kube: str = "1.33.0", *extra: str) -> list[dict]:
    out = helm("template", "town", str(CHART), "--namespace", "ganshou", "--kube-version", kube,
               *(["-f", str(values)] if values else []), *extra)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_lint_strict() -> None:
    out = helm("lint", "--strict", str(CHART), "--kube-version", "1.33.0")
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("kube", ["1.29.0", "1.33.0"])
@pytest.mark.parametrize("values", EXAMPLES, ids=lambda v: v.stem if v else "defaults")
def test_every_example_renders_and_validates(values: Path | None, kube: str, tmp_path: Path) -> None:
    docs = render(values, kube)
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    out = subprocess.run(["kubernetes-validate", "--strict", "--quiet", "-k", kube, str(manifest)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_typo_in_values_is_refused_by_the_schema() -> None:
    out = helm("template", "town", str(CHART), "--kube-version", "1.33.0", "--set", "intake.replicaz=3")
    assert out.returncode != 0 and "replicaz" in out.stderr


def test_every_deployment_is_locked_down_and_probed() -> None:
    deployments = [d for d in render(None) if d["kind"] == "Deployment"]
    assert {d["metadata"]["name"].removeprefix("town-ganshou-") for d in deployments} == {
        "intake", "intake-relay", "casework", "casework-worker", "casework-relay", "partner-resource",
        "partner-resource-worker", "partner-resource-relay", "metrics"}
    for d in deployments:
        assert set(d["spec"]["selector"]["matchLabels"]) == {"app.kubernetes.io/name", "app.kubernetes.io/instance"}
        pod = d["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        assert pod["securityContext"]["runAsNonRoot"] and pod["automountServiceAccountToken"] is False
        assert c["securityContext"]["readOnlyRootFilesystem"] and c["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert c["command"][:2] == ["python", "-m"] and c["args"]
        if any(p["name"] == "grpc" for p in c["ports"]):
            assert c["readinessProbe"]["grpc"]["port"] == 50051 and c["startupProbe"]["grpc"]
        assert pod["terminationGracePeriodSeconds"] > 10  # longer than GRPC_GRACE_S
        env = {e["name"] for e in c["env"]}
        assert {"KAFKA_BOOTSTRAP", "METRICS_PORT"} <= env
        assert all("value" not in e or "secret" not in e["name"].lower() for e in c["env"])
    assert sum(1 for d in render(None) if d["kind"] == "NetworkPolicy") == len(deployments)


def test_strimzi_topics_monitoring_and_the_repos_dashboards_when_those_apis_exist() -> None:
    docs = render(CHART / "examples/strimzi-cloudnativepg.yaml", "1.33.0", *CRDS)
    kinds = [d["kind"] for d in docs]
    assert kinds.count("KafkaTopic") == 7 and "ServiceMonitor" in kinds and "PrometheusRule" in kinds
    assert not any(d["kind"] == "Job" and d["metadata"]["name"].endswith("-topics") for d in docs)
    boards = {k: v for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["labels"].get("grafana_dashboard")
              for k, v in d["data"].items()}
    repo = {p.name: p.read_text() for p in (ROOT / "deploy/grafana/dashboards").glob("*.json")}
    assert boards == repo and all(json.loads(v)["panels"] for v in boards.values())
    hooks = [d for d in docs if d["kind"] == "Job"]
    assert {h["metadata"]["annotations"]["helm.sh/hook"] for h in hooks} == {"pre-install,pre-upgrade"}
    assert all(h["metadata"]["annotations"]["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
               for h in hooks)
