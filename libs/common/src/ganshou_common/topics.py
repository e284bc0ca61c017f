"""The event topics, and creating them on a broker (idempotently).

One topic per producing service, `ganshou.<service>.events.v1`, keyed by stream id,
retention unlimited: the topics are the shared history.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterable, Mapping

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from ganshou_common.kafka_config import client_kwargs

SERVICES = ("intake", "casework", "partner-resource")
UNLIMITED = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}


def events_topic(service: str) -> str:
    return f"ganshou.{service}.events.v1"


def dead_letter_topic(service: str) -> str:
    return f"ganshou.{service}.dead-letter.v1"


def all_event_topics() -> list[str]:
    return [events_topic(s) for s in SERVICES]


def standard_topics() -> list[str]:
    """The topics every deployment has: the events topics and the dead-letter topics."""
    return all_event_topics() + [dead_letter_topic(s) for s in SERVICES + ("metrics",)]


async def wait_for_broker(bootstrap: str, timeout_s: float) -> AIOKafkaAdminClient:
    """Connect an admin client, retrying until the broker answers or the time is up."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, **client_kwargs())
        try:
            await admin.start()
            await admin.list_topics()
            return admin
        except (KafkaError, OSError) as exc:
            last = exc
            await admin.close()
            await asyncio.sleep(0.5)
    raise TimeoutError(f"Kafka at {bootstrap} did not answer within {timeout_s}s: {last}")


async def ensure_topics(
    admin: AIOKafkaAdminClient, names: Iterable[str], partitions: int,
    configs: Mapping[str, str] = UNLIMITED, existing: set[str] | None = None,
) -> list[str]:
    """Create the topics that are missing (with `configs`); returns the names created.
    `existing`: the broker's topics when the caller has just listed them."""
    if existing is None:
        existing = set(await admin.list_topics())
    missing = [n for n in names if n not in existing]
    if missing:
        try:
            await admin.create_topics(
                [
                    NewTopic(n, num_partitions=partitions, replication_factor=1, topic_configs=dict(configs))
                    for n in missing
                ]
            )
        except TopicAlreadyExistsError:
            pass  # raced with another creator: the topic is there, which is all we want
    return missing


async def _main(argv: list[str]) -> int:
    import argparse  # here: every service imports this module, few run it (argparse ~30 ms)

    parser = argparse.ArgumentParser(description="Wait for Kafka and create Ganshou's topics.")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    try:
        admin = await wait_for_broker(args.bootstrap, args.timeout)
    except TimeoutError as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        created = await ensure_topics(admin, standard_topics(), args.partitions)
        print(f"topics ready ({len(created)} created)")
    finally:
        await admin.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(_main(sys.argv[1:])))
