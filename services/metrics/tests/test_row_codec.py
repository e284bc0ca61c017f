"""Rows as the tables hold them: their JSON bytes, each no larger in memory than itself."""

import subprocess
import sys

PROGRAM = """
import resource
from ganshou_metrics.adapters.row_codec import decode_row, encode_row
row = {"v": 1, "t": "resident", "s": {"kind": "resident", "c": "c-1", "seg": 1, "erased": False}}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
held = [encode_row({**row, "v": i}) for i in range(200_000)]
grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
assert decode_row(held[7]) == {**row, "v": 7}
print(grown_mb)
"""


def test_a_row_holds_its_bytes_not_the_encoders_buffer():
    # orjson's own bytes object keeps its ~4 KB working buffer: 200,000 rows would hold ~800 MB.
    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) < 100, f"200,000 rows grew the process by {out.stdout.strip()} MB"
