"""Generate the Python, gRPC and type-stub code for every proto under proto/.

Usage: python tools/genproto.py [OUT_DIR]   (default: libs/protos/src)

Protos are named by their package path (ganshou/<area>/v1/), so the generated
modules import each other as `ganshou.<area>.v1.x_pb2` with no post-processing.
"""

from __future__ import annotations

import shutil
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
DEFAULT_OUT = ROOT / "libs" / "protos" / "src"


def generate(out_dir: Path) -> None:
    target = out_dir / "ganshou"
    if target.exists():
        shutil.rmtree(target)
    out_dir.mkdir(parents=True, exist_ok=True)
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    well_known = str(resources.files("grpc_tools") / "_proto")
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # grpc_tools writes no package markers: ganshou stays a namespace package, but the
    # leaves get py.typed so type checkers read the stubs.
    (target / "py.typed").touch()


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT)
