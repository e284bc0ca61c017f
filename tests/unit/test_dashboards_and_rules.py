"""The dashboards are the generator's output, and the alert rules pass promtool and its tests."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def generator(name: str = "dashboards"):
    spec = importlib.util.spec_from_file_location(name, ROOT / f"tools/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dashboard_json_is_current() -> None:
    for name, text in generator().render().items():
        committed = ROOT / "deploy/grafana/dashboards" / name
        assert committed.read_text() == text, f"{name} is stale: run `uv run python tools/dashboards.py`"
        board = json.loads(text)
        assert board["panels"] and all(p["targets"] for p in board["panels"])


def test_console_pages_are_current() -> None:
    pages = generator("consoles").render()
    for path, text in pages.items():
        assert path.read_text() == text, f"{path.name} is stale: run `uv run python tools/consoles.py`"
    # one page a dashboard, each with every panel's title
    for uid, (_, panels) in generator().DASHBOARDS.items():
        page = next(text for path, text in pages.items() if path.name == f"ganshou-{uid}.html")
        assert all(title in page for title, *_ in panels)


def test_alert_rules_pass_promtool() -> None:
    rules = sorted((ROOT / "deploy/prometheus/rules").glob("*.yml"))
    out = subprocess.run(["promtool", "check", "rules", *map(str, rules)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_promise_alerts_fire_through_an_outage_of_the_metrics_worker() -> None:
    """promtool's rule tests (tests/unit/rules/): a promise broken while the worker was down
    for longer than the window, or in a community first seen late, is still alerted on."""
    tests = sorted((ROOT / "tests/unit/rules").glob("*_test.yml"))
    assert tests
    out = subprocess.run(["promtool", "test", "rules", *map(str, tests)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
