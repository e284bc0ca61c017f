"""The ganshou command against the real system, as a person runs it (a subprocess)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from PIL import Image

from .system import SECRET, System

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


async def ganshou(system: System, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GANSHOU_TOKEN_SECRET": SECRET, "COLUMNS": "200",
           **{f"GANSHOU_{k.upper()}": f"127.0.0.1:{system.procs[k].grpc_port}"
              for k in ("intake", "casework", "partner", "metrics")}}
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "ganshou_cli.main", *args], cwd=cwd,
                                   env=env, capture_output=True, text=True, timeout=300)


async def test_the_command_line_end_to_end(system: System, tmp_path: Path) -> None:
    demo = await ganshou(system, "demo", "--communities", "2", "--households", "6")
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert "Issues received" in demo.stdout

    sample = tmp_path / "households.csv"
    sample.write_text((ROOT / "data/samples/households.csv").read_text())
    imported = await ganshou(system, "import", "households", str(sample))
    assert imported.returncode == 1, imported.stdout + imported.stderr  # some rows were bad
    assert "imported 3 households" in imported.stdout
    rejected = (tmp_path / "households.rejected.csv").read_text().splitlines()
    assert [line.split(",")[:2] for line in rejected[1:]] == [["5", "address"], ["7", "residents[0].phone"],
                                                             ["8", "community_id"]]
    again = await ganshou(system, "import", "households", str(sample))
    assert "imported 3 households" in again.stdout  # the same file again: answered, nothing added

    figures = json.loads((await ganshou(system, "figures", "--output", "json")).stdout)
    assert int(figures["households"]) == 2 * 6 + 3 and int(figures["issues_received"]) > 0
    communities = json.loads((await ganshou(system, "communities", "--output", "json")).stdout)
    assert "zj-01" in {c["community_id"] for c in communities} and all(c["name"] for c in communities)
    cases = json.loads((await ganshou(system, "cases", "list", "zj-01", "--output", "json")).stdout)
    assert cases and {"case_id", "status"} <= set(cases[0])
    town = json.loads((await ganshou(system, "cases", "list", "--output", "json")).stdout)  # every community's
    assert {k["case_id"] for k in cases} < {k["case_id"] for k in town} and len({k["community_id"] for k in town}) > 1
    shown = await ganshou(system, "cases", "show", cases[0]["case_id"])
    assert shown.returncode == 0 and "CaseOpened" in shown.stdout
    by_demand = await ganshou(system, "cases", "show", "--demand", cases[0]["demand_id"])
    assert by_demand.returncode == 0 and cases[0]["case_id"] in by_demand.stdout
    missing = await ganshou(system, "cases", "show", "no-such-case")
    assert missing.returncode == 2 and "NOT_FOUND" in missing.stdout

    pdf = tmp_path / "report.pdf"
    report = await ganshou(system, "report", "--period", "2026年下半年", "--out", str(pdf))
    assert report.returncode == 0, report.stdout + report.stderr  # exit 1 would mean missing glyphs
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True).stdout
    assert "NotoSansCJK" in fonts
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == 4
    for page in pages:  # every page carries a chart: a good share of red bars
        img = Image.open(page).convert("RGB")
        red = sum(1 for r, g, b in img.get_flattened_data() if r > 150 and g < 90 and b < 90)
        assert red > 0.01 * img.width * img.height, f"{page.name} has no chart"
    html = (tmp_path / "report.html").read_text()
    assert "<h1>张江镇感受式服务简报" in html and "累计" in html  # totals, the period only a label

    from ganshou.intake.v1 import intake_service_pb2 as iapi

    listed = await system.intake.ListHouseholds(iapi.ListHouseholdsRequest(community_id="zj-01"),
                                                metadata=system.auth())
    household = await system.intake.GetHousehold(iapi.GetHouseholdRequest(
        household_id=listed.households[0].household_id, purpose="test"), metadata=system.auth())
    victim = household.household.residents[0].resident_id
    erased = await ganshou(system, "erase-resident", victim, "--reason", "本人申请")
    assert erased.returncode == 0, erased.stdout
    got = await system.intake.GetResident(iapi.GetResidentRequest(resident_id=victim, purpose="test"),
                                          metadata=system.auth())
    assert got.resident.erased and got.resident.name == "[erased]"

    from ganshou.partner_resource.v1 import partner_resource_service_pb2 as papi

    team = await system.partners.RegisterVolunteerTeam(papi.RegisterVolunteerTeamRequest(
        request_id=uuid.uuid4().hex, name=f"护河队 {uuid.uuid4().hex[:6]}", community_id="zj-01"), metadata=system.auth())
    volunteer = await system.partners.RegisterVolunteer(papi.RegisterVolunteerRequest(
        request_id=uuid.uuid4().hex, team_id=team.team_id, name="钱志强", phone="13512345678", segment=1),
        metadata=system.auth())
    erased = await ganshou(system, "erase-volunteer", volunteer.volunteer_id, "--reason", "本人申请")
    assert erased.returncode == 0 and "erased" in erased.stdout, erased.stdout + erased.stderr
    again = await ganshou(system, "erase-volunteer", "nobody", "--reason", "本人申请")
    assert again.returncode != 0 and "volunteer_id" in again.stdout + again.stderr

    # rebuild-projections' wait: a new generation beside the live one, caught up and identical.
    system.add_proc("metrics-g2", "ganshou_metrics", "worker", system.metrics_env(f"cli-rebuild-{uuid.uuid4().hex[:6]}"), True)
    system.spawn("metrics-g2")
    await system.wait_ready("metrics-g2")
    waited = await ganshou(system, "rebuild-wait", "--live", f"127.0.0.1:{system.procs['metrics'].grpc_port}",
                           "--rebuilt", f"127.0.0.1:{system.procs['metrics-g2'].grpc_port}", "--timeout", "90")
    assert waited.returncode == 0, waited.stdout + waited.stderr

    token = await ganshou(system, "token", "--role", "auditor")
    assert token.returncode == 0 and token.stdout.count(".") == 2


async def test_figures_watch_outlives_a_restart_of_the_metrics_worker(system: System) -> None:
    """A leader's `ganshou figures --watch` keeps watching while the worker restarts."""
    env = {**os.environ, "GANSHOU_TOKEN_SECRET": SECRET,
           **{f"GANSHOU_{k.upper()}": f"127.0.0.1:{system.procs[k].grpc_port}"
              for k in ("intake", "casework", "partner", "metrics")}}
    watch = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ganshou_cli.main", "figures", "--watch", "--output", "json", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        first = json.loads(await asyncio.wait_for(watch.stdout.readline(), 30))
        system.kill("metrics", signal.SIGTERM)
        system.spawn("metrics")
        await system.wait_ready("metrics")
        again = json.loads(await asyncio.wait_for(watch.stdout.readline(), 60))  # from the new worker
        assert again.keys() == first.keys() and watch.returncode is None
    finally:
        watch.terminate()
        _, err = await watch.communicate()
    assert b"watching again" in err
