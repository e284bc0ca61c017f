"""The proto tree: lint clean, breaking changes caught, generated code current."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def buf(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("buf") or str(Path(sys.executable).parent / "buf")
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_buf_lint_passes() -> None:
    result = buf("lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_breaking_catches_a_removed_field(tmp_path: Path) -> None:
    changed = tmp_path / "changed"
    shutil.copytree(ROOT / "proto", changed / "proto")
    shutil.copy(ROOT / "buf.yaml", changed / "buf.yaml")
    envelope = changed / "proto/ganshou/common/v1/envelope.proto"
    text = envelope.read_text()
    assert "  string community_id = 10;\n" in text
    envelope.write_text(text.replace("  string community_id = 10;\n", ""))

    result = buf("breaking", "--against", str(ROOT), cwd=changed)
    assert result.returncode != 0
    assert "community_id" in result.stdout + result.stderr

    unchanged = buf("breaking", "--against", str(ROOT))
    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr


def test_generated_code_is_current(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "tools/genproto.py"), str(tmp_path)], check=True,
                   capture_output=True, timeout=120)
    committed = ROOT / "libs/protos/src/ganshou"
    fresh = tmp_path / "ganshou"
    stale: list[str] = []

    def compare(a: Path, b: Path) -> None:
        cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])
        stale.extend(str(a / n) for n in cmp.left_only + cmp.right_only + cmp.diff_files)
        for sub in cmp.common_dirs:
            compare(a / sub, b / sub)

    compare(committed, fresh)
    assert not stale, f"generated code is stale, run `make proto`: {stale}"


def test_generated_imports_work_without_post_processing() -> None:
    from ganshou.common.v1 import envelope_pb2, types_pb2

    env = envelope_pb2.EventEnvelope(stream_id="household-1")
    env.payload.Pack(types_pb2.Money(fen=1))
    assert env.payload.TypeName() == "ganshou.common.v1.Money"
