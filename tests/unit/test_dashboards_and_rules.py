"""The dashboards are the generator's output, and the alert rules pass promtool."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def generator():
    spec = importlib.util.spec_from_file_location("dashboards", ROOT / "tools/dashboards.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dashboard_json_is_current() -> None:
    for name, text in generator().render().items():
        committed = ROOT / "deploy/grafana/dashboards" / name
        assert committed.read_text() == text, f"{name} is stale: run `uv run python tools/dashboards.py`"
        board = json.loads(text)
        assert board["panels"] and all(p["targets"] for p in board["panels"])


def test_alert_rules_pass_promtool() -> None:
    rules = sorted((ROOT / "deploy/prometheus/rules").glob("*.yml"))
    out = subprocess.run(["promtool", "check", "rules", *map(str, rules)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
