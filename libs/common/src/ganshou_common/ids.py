"""Identifiers: UUIDv7 for events (time-ordered, unique across services)."""

from __future__ import annotations

import uuid

import uuid_utils


def new_event_id() -> uuid.UUID:
    return uuid.UUID(bytes=uuid_utils.uuid7().bytes)


def new_id() -> str:
    """A fresh entity id (UUIDv7 as text)."""
    return str(new_event_id())


def derived_id(namespace: str, name: str) -> str:
    """A deterministic id (UUIDv5 of `name` in the `namespace` id), as uuid.uuid5 gives it:
    a retried import derives the same ids. uuid_utils' is ~9× faster than the stdlib's,
    which a bulk import calls twice per person."""
    return str(uuid_utils.uuid5(uuid_utils.UUID(namespace), name))
