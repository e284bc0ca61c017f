"""What the reliability suite measured, written as docs/reliability.md by `make soak`
(and to .run/reliability-small.md by `make test`, so a small run can be read too)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next(int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    pg = subprocess.run(["bash", "-c", "ls /usr/lib/postgresql | sort -n | tail -1"], capture_output=True, text=True)
    return (f"{os.cpu_count()} × {cpu}, {mem} MB RAM, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, Kafka {os.environ.get('KAFKA_VERSION', '3.9.2')} (KRaft, 1 node), "
            f"PostgreSQL {pg.stdout.strip()}")


@dataclass
class Report:
    soak: bool
    sections: dict[str, dict] = field(default_factory=dict)

    def add(self, name: str, **values) -> None:
        """Record a scenario's numbers; kept per scenario, so separate runs of the suite
        (one scenario at a time) add up to one report."""
        self.sections.setdefault(name, {}).update(values)
        folder = self._folder()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.json").write_text(json.dumps(self.sections[name], ensure_ascii=False, default=str))

    def _folder(self) -> Path:
        run = Path(os.environ.get("GANSHOU_RUN", ROOT / ".run"))
        return run / ("reliability-soak" if self.soak else "reliability-small")

    def write(self) -> None:
        folder = self._folder()
        if not folder.is_dir():
            return
        path = ROOT / "docs" / "reliability.md" if self.soak else folder.with_suffix(".md")
        lines = [
            "# Reliability and security: the soak's results" if self.soak else "# Reliability (small run)",
            "",
            f"Written by `{'make soak' if self.soak else 'make test'}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
            f"Machine: {machine()}.",
            "",
            "Each section is one scenario of tests/integration/reliability/ (a Kafka broker and a PostgreSQL",
            "server of the suite's own, every Ganshou process real); the numbers are that run's.",
            "",
            "- **Load under faults**: the load generator (request ids, deadlines, retries of UNAVAILABLE,",
            "  DEADLINE_EXCEEDED and CANCELLED with the same request id) drives visits, demands, hotline calls, every case",
            "  step, ratings, votes, deliveries and aid while faults strike at random moments: SIGKILL of every",
            "  process (then restarted), SIGTERM of each server, the broker and the database stopped and",
            "  started. Then: every acknowledged command is in its store; every stored event is on Kafka under",
            "  its (stream, version) in stream order (redeliveries counted); the figures recomputed by SQL over",
            "  the event stores equal GetFigures exactly, for the town and every community.",
            "- **Fuzzing**: hypothesis over every RPC; never INTERNAL or UNKNOWN, no server dies, a refused",
            "  command leaves no event and no request record.",
            "- **Authorisation matrix**, **Tokens and lists**, **TLS and mTLS**: generated from each RPC's",
            "  declared roles; bad tokens; no list or watch shows another community; plaintext and",
            "  certificate-less clients refused.",
            "- **Personal data**, **Poison messages**, **Promises under faults**: as their names say.",
            "",
        ]
        for section in sorted(folder.glob("*.json")):
            lines += [f"## {section.stem}", ""]
            for k, v in json.loads(section.read_text()).items():
                text = json.dumps(v, ensure_ascii=False, sort_keys=True) if isinstance(v, dict | list) else str(v)
                lines.append(f"- **{k}**: {text}")
            lines.append("")
        path.write_text("\n".join(lines))
