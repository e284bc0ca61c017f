"""A Kafka broker and a PostgreSQL server of the suite's own, started with the same
deploy/local/stack.sh as `make up` but on free ports and a private run folder, so the
fault scenarios can stop and restart them without touching the developer's stack."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ganshou_common.testing.procs import free_port

ROOT = Path(__file__).resolve().parents[3]
STACK = ROOT / "deploy" / "local" / "stack.sh"


@dataclass
class PrivateStack:
    run: Path
    kafka_port: int
    pg_port: int

    @classmethod
    def create(cls, run: Path) -> "PrivateStack":
        stack = cls(run, free_port(), free_port())
        main_run = Path(os.environ.get("GANSHOU_RUN", ROOT / ".run"))
        version = os.environ.get("KAFKA_VERSION", "3.9.2")
        (run / "kafka").mkdir(parents=True, exist_ok=True)
        # The broker's jars are the ones `make install` resolved; no second download.
        os.symlink(main_run / "kafka" / f"libs-{version}", run / "kafka" / f"libs-{version}")
        return stack

    @property
    def kafka(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def env(self) -> dict[str, str]:
        return {**os.environ, "GANSHOU_RUN": str(self.run), "KAFKA_PORT": str(self.kafka_port),
                "KAFKA_CONTROLLER_PORT": str(self._ctl),
                "PG_PORT": str(self.pg_port), "KAFKA_BOOTSTRAP": self.kafka, "STACK_RECORD": ""}

    def __post_init__(self) -> None:
        self._ctl = free_port()

    def _stack(self, *args: str) -> None:
        done = subprocess.run(["bash", str(STACK), *args], env=self.env(), capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"stack.sh {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")

    def up(self, *components: str) -> None:
        self._stack("up", *(components or ("postgres", "kafka")))

    def down(self, *components: str) -> None:
        self._stack("down", *(components or ("postgres", "kafka")))

    def kill_kafka(self) -> None:
        """The broker killed outright (no controlled shutdown)."""
        pid = (self.run / "pids" / "kafka.pid").read_text().strip()
        subprocess.run(["kill", "-KILL", f"-{pid}"], check=False)
        (self.run / "pids" / "kafka.pid").unlink(missing_ok=True)

    def kafka_alive(self) -> bool:
        pid = self.run / "pids" / "kafka.pid"
        return pid.exists() and subprocess.run(["kill", "-0", pid.read_text().strip()],
                                               capture_output=True).returncode == 0

    def destroy(self) -> None:
        """Stop both and delete their data; the logs stay (in pytest's temporary folder).
        GANSHOU_KEEP_STACK_DATA=1 keeps the data too, to read a failed run's topics after it."""
        self.down()
        if os.environ.get("GANSHOU_KEEP_STACK_DATA") == "1":
            return
        pg = self.run / "postgres"
        if pg.is_symlink():
            shutil.copy(pg / "postgres.log", self.run / "logs" / "postgres-copy.log")
            shutil.rmtree(pg.resolve(), ignore_errors=True)
        shutil.rmtree(self.run / "kafka", ignore_errors=True)
