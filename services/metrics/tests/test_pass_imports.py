"""What a new generation's first pass imports before it forks its share processes: only
what a share needs. Every import there delays both processes' folds (the event store's
asyncpg, prometheus_client and argparse came with the consumer's module: 0.17 s of a
rebuild's start here)."""

import subprocess
import sys

PROGRAM = """
import sys
from ganshou_common.schemas import load_all_schemas
from ganshou_metrics.adapters import names
from ganshou_metrics.adapters.catch_up import catch_up
from ganshou_metrics.adapters.changelog_topics import ensure_changelogs
from ganshou_metrics.adapters.first_pass import ShareProcess
load_all_schemas()
print(" ".join(sorted({m.split(".")[0] for m in sys.modules})))
"""

NOT_BEFORE_THE_FORK = {"asyncpg", "prometheus_client", "argparse", "faust", "grpc", "jwt", "cryptography"}


def test_the_pass_forks_with_only_what_a_share_needs():
    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert NOT_BEFORE_THE_FORK.isdisjoint(out.stdout.split()), NOT_BEFORE_THE_FORK & set(out.stdout.split())
