"""The tables' changelog topics, created before the worker writes to them (faust-free: a
new generation's first pass writes its rows before faust is even imported)."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from ganshou_common.kafka_config import client_kwargs


async def ensure_changelogs(bootstrap: str, changelogs: Iterable[str], partitions: int) -> set[str]:
    """Create the changelogs missing (compacted, as many partitions as the source topics):
    left to faust, a changelog created at first use can show 0 partitions in the consumer's
    metadata and crash its agent in a loop. Every topic the broker then has."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in changelogs if name not in existing]
        if missing:
            try:
                await admin.create_topics([NewTopic(name, partitions, 1, topic_configs={"cleanup.policy": "compact"})
                                           for name in missing])
            except TopicAlreadyExistsError:
                pass
        return existing | set(missing)
    finally:
        await admin.close()
