"""Every benchmark still runs (at a tiny size; numbers are never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration
HELPERS = {"machine.py", "raw_consumer.py"}  # what the benchmarks use, not benchmarks (system.py runs raw_consumer.py)


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "bench").glob("*.py") if p.name not in HELPERS))
def test_benchmark_runs_at_a_tiny_size(script: str) -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--tiny"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout[out.stdout.index("{"):])
    assert result["machine"]["cores"] >= 1
