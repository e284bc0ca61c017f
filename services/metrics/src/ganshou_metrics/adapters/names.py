"""The worker's Kafka names, known without importing faust: a new generation's first pass
starts before faust's imports (~1 s here), so its share processes fold meanwhile. faust
derives a table's changelog as `<app id>-<table name>-changelog` (a contract test checks it)."""

from __future__ import annotations

from collections.abc import Mapping

from ganshou_common.topics import SERVICES, events_topic


def app_id(generation: str) -> str:
    """faust's app id: also its consumer group's id."""
    return f"ganshou-metrics-g{generation}"


def table_name(service: str) -> str:
    return f"streams-{service}"


def source_topics(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Service → the topic of its events (a bench or a test may read others)."""
    return {service: (overrides or {}).get(service, events_topic(service)) for service in SERVICES}


def changelogs(generation: str, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Source topic → the changelog topic of the table its events fold into."""
    return {topic: f"{app_id(generation)}-{table_name(service)}-changelog"
            for service, topic in source_topics(overrides).items()}
