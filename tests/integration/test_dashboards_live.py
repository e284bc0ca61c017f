"""Every panel's query, evaluated by a real Prometheus scraping the real services after
some activity, returns data: for the whole town and for one community."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import grpc
import pytest

from ganshou.intake.v1 import intake_service_pb2 as iapi
from ganshou_common.testing.procs import free_port

from .test_figures_end_to_end import eventually, load_small_town
from .system import System

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def panel_queries() -> list[tuple[str, str, str]]:
    out = []
    for board in sorted((ROOT / "deploy/grafana/dashboards").glob("*.json")):
        for p in json.loads(board.read_text())["panels"]:
            out += [(board.stem, p["title"], t["expr"]) for t in p["targets"]]
    return out


def query(port: int, expr: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    reply = json.loads(urllib.request.urlopen(url, timeout=10).read())
    assert reply["status"] == "success", reply
    return reply["data"]["result"]


async def test_every_panel_query_returns_data(system: System, tmp_path: Path) -> None:
    port = free_port()
    targets = [f"127.0.0.1:{p.metrics_port}" for p in system.procs.values()]
    (tmp_path / "prometheus.yml").write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ROOT / "deploy/prometheus/rules/ganshou.yml")],
        "scrape_configs": [{"job_name": "ganshou", "static_configs": [{"targets": targets}]}],
    }))
    prom = subprocess.Popen(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
                             f"--web.console.templates={ROOT / 'deploy/prometheus/consoles'}",
                             f"--web.console.libraries={ROOT / 'deploy/prometheus/console_libraries'}",
                             "--log.level=warn"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        c = "c-dash"
        expected = await load_small_town(system, c)
        with pytest.raises(grpc.aio.AioRpcError):  # one refused call, for the error panels
            await system.intake.RegisterCommunity(iapi.RegisterCommunityRequest(request_id="x"),
                                                  metadata=system.auth())
        await eventually(lambda: asyncio.to_thread(
            lambda: query(port, f'ganshou_households{{community="{c}"}}') and
            query(port, f'ganshou_households{{community="{c}"}}')[0]["value"][1] == str(expected["households"])))
        await asyncio.sleep(5)  # a few more scrapes, so rates over [1m] have two samples
        empty = []
        for community in ("", c):
            for board, title, expr in panel_queries():
                if not query(port, expr.replace("$community", community)):
                    empty.append(f"{board} / {title}: {expr} (community={community!r})")
        assert not empty, "panels without data:\n" + "\n".join(empty)
        # The console pages `make run` serves: every value shown, for the town and the community.
        for page in sorted((ROOT / "deploy/prometheus/consoles").glob("*.html")):
            for community in ("", c):
                url = f"http://127.0.0.1:{port}/consoles/{page.name}?" + urllib.parse.urlencode({"community": community})
                html = urllib.request.urlopen(url, timeout=10).read().decode()
                assert 'class="missing"' not in html, f"{page.name} (community={community!r}) shows a value missing"
                if page.name != "index.html":
                    assert (f"Community <b>{c}</b>" if community else "The whole town") in html
        # Their graphs call prom_console.js, which this Prometheus serves: only what it defines.
        js = urllib.request.urlopen(f"http://127.0.0.1:{port}/classic/static/js/prom_console.js", timeout=10).read().decode()
        for page in (ROOT / "deploy/prometheus/consoles").glob("*.html"):
            for name in set(re.findall(r"PromConsole\.(\w+(?:\.\w+)?)", page.read_text())):
                assert f"PromConsole.{name} = " in js, f"{page.name}: prom_console.js has no PromConsole.{name}"
        overview = urllib.request.urlopen(f"http://127.0.0.1:{port}/consoles/ganshou-town-overview.html?community={c}",
                                          timeout=10).read().decode()
        assert f"<tr><th>Issues received 受理问题</th><td>{expected['issues_received']}</td></tr>" in overview
        rules = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rules").read())
        assert len([r for g in rules["data"]["groups"] for r in g["rules"]]) == 8
    finally:
        prom.terminate()
        prom.wait(10)
