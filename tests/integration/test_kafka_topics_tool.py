"""tools/kafka_topics.py: after a run that started the broker, the topics it made are
deleted; those there before it, and the standard topics, are kept."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ganshou_common.topics import standard_topics

pytestmark = pytest.mark.integration
TOOL = Path(__file__).resolve().parents[2] / "tools" / "kafka_topics.py"


async def _create(bootstrap: str, names: list[str]) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if names:
            await admin.create_topics([NewTopic(n, 1, 1) for n in names])
        return set(await admin.list_topics())
    finally:
        await admin.close()


def _tool(bootstrap: str, *args: str) -> str:
    return subprocess.run([sys.executable, str(TOOL), *args], env={**os.environ, "KAFKA_BOOTSTRAP": bootstrap},
                          capture_output=True, text=True, check=True, timeout=120).stdout


async def test_the_topics_made_after_the_snapshot_are_deleted(kafka_bootstrap: str, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    before = f"sweep.before.{run}"
    await _create(kafka_bootstrap, [before])
    snapshot = tmp_path / "topics"
    _tool(kafka_bootstrap, "snapshot", str(snapshot))
    # As when the broker's metadata did not show them yet at the snapshot:
    snapshot.write_text("\n".join(set(snapshot.read_text().split()) - set(standard_topics())))
    made = [f"sweep.made.{run}.{i}" for i in range(3)]
    await _create(kafka_bootstrap, made)
    # Tests run one at a time and stop what they start: nothing else makes topics meanwhile.
    assert "deleted" in _tool(kafka_bootstrap, "sweep", str(snapshot))
    left = await _create(kafka_bootstrap, [])
    assert before in left and not set(made) & left
    assert set(standard_topics()) <= left
