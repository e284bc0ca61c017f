"""Identifiers: UUIDv7 for events (time-ordered, unique across services)."""

from __future__ import annotations

import uuid

import uuid_utils


def new_event_id() -> uuid.UUID:
    return uuid.UUID(bytes=uuid_utils.uuid7().bytes)


def new_id() -> str:
    """A fresh entity id (UUIDv7 as text)."""
    return str(new_event_id())
