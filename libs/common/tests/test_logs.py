"""The logs: JSON lines (an exception's traceback included), and structlog imported
without rich (its import was most of every process's start, for a renderer never used)."""

import json
import subprocess
import sys

PROGRAM = """
import sys
from ganshou_common import logs
assert "rich" not in sys.modules, "structlog imported rich"
logs.configure("test")
try:
    1 / 0
except ZeroDivisionError:
    logs.get("t").exception("failed", n=1)
import rich  # still importable by whoever needs it (the CLI)
"""


def test_logs_are_json_with_tracebacks_and_structlog_comes_without_rich():
    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    line = json.loads(out.stdout.strip().splitlines()[-1])
    assert line["event"] == "failed" and line["n"] == 1 and line["service"] == "test"
    assert "ZeroDivisionError" in line["exception"]
