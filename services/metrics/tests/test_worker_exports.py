"""The metrics worker's /metrics before it serves: its own counters, no figures. While a new
generation's pass or a restart's reading back runs, the figures are not yet the town's, and
zeros would show the dashboards a town emptied (test_dashboards_live.py sees them once served)."""

import subprocess
import sys

from ganshou_common.testing.procs import free_port

PROGRAM = """
import os, sys, urllib.request
from ganshou_metrics.__main__ import _make_worker
_make_worker("127.0.0.1:9", "exports-test", 6, None)  # made, not started: nothing reaches the broker
page = urllib.request.urlopen(f"http://127.0.0.1:{os.environ['METRICS_PORT']}/metrics", timeout=10).read().decode()
print("process_cpu_seconds_total" in page, "ganshou_households" in page)
"""


def test_no_figures_are_exported_before_the_worker_serves():
    env = {"GANSHOU_TOKEN_SECRET": "x" * 40, "METRICS_PORT": str(free_port()), "GRPC_PORT": str(free_port()),
           "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=120,
                         env={**env, "HOME": "/tmp"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False"], out.stdout
