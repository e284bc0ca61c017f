"""The tables' changelog topics, created before the worker writes to them (faust-free: a
new generation's first pass writes its rows before faust is even imported)."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient

from ganshou_common.kafka_config import client_kwargs
from ganshou_common.topics import ensure_topics

COMPACTED = {"cleanup.policy": "compact"}  # a table's changelog keeps each row's last value


async def ensure_changelogs(bootstrap: str, changelogs: Iterable[str], partitions: int) -> set[str]:
    """Create the changelogs missing (as many partitions as the source topics): left to
    faust, a changelog created at first use can show 0 partitions in the consumer's metadata
    and crash its agent in a loop. Every topic the broker then has."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        return existing | set(await ensure_topics(admin, changelogs, partitions, COMPACTED, existing))
    finally:
        await admin.close()
