"""What the event store keeps: streams of events, request records, consumer checkpoints.

Payloads are serialized protobuf messages; `event_type` is the message's full name
(e.g. `ganshou.intake.v1.HouseholdVisited`), never a Python path.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import AsyncContextManager, Protocol

from ganshou_common.errors import ConcurrencyConflict, DomainError

ANY_VERSION = -1  # append without checking the stream's head (commands retry on conflict)
NO_STREAM = 0  # the stream must not exist yet


@dataclass(frozen=True)
class Metadata:
    correlation_id: str = ""
    causation_id: str = ""
    actor_subject: str = ""
    actor_role: str = ""


@dataclass(frozen=True)
class NewEvent:
    event_type: str
    payload: bytes
    community_id: str = ""
    occurred_at: datetime | None = None  # defaults to the time it is recorded


@dataclass(frozen=True)
class StreamAppend:
    stream_id: str
    stream_type: str
    expected_version: int
    events: Sequence[NewEvent]


@dataclass(frozen=True)
class StoredEvent:
    position: int  # global, increasing in commit-independent insert order; gaps possible
    event_id: uuid.UUID
    stream_id: str
    stream_type: str
    version: int
    event_type: str
    payload: bytes
    community_id: str
    occurred_at: datetime
    recorded_at: datetime
    metadata: Metadata = field(default_factory=Metadata)


@dataclass(frozen=True)
class RequestRecord:
    request_id: str
    fingerprint: str
    result: bytes


class RequestAlreadyRecorded(DomainError):
    """Another transaction recorded this request id first (a concurrent retry)."""


class StreamVersionConflict(ConcurrencyConflict):
    pass


class Transaction(Protocol):
    """One unit of work: everything done through it commits together or not at all."""

    async def stream_version(self, stream_id: str) -> int: ...

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[StoredEvent]: ...

    async def append(self, append: StreamAppend, meta: Metadata = Metadata()) -> list[StoredEvent]:
        """Append events after `expected_version`; raises StreamVersionConflict when the
        stream is elsewhere. The events are recorded for publishing in the same transaction."""
        ...

    async def append_many(self, appends: list[StreamAppend], meta: Metadata = Metadata()) -> list[StoredEvent]:
        """Append to several streams (each once) in one go: every stream must be at its
        expected version, or nothing is appended."""
        ...

    async def find_request(self, request_id: str) -> RequestRecord | None: ...

    async def record_request(self, request_id: str, fingerprint: str, result: bytes) -> None:
        """Remember a command's result; raises RequestAlreadyRecorded when the id is taken."""
        ...

    async def claim(self, consumer: str, stream_id: str, version: int) -> bool:
        """Record that `consumer` applies this event in this transaction; False when it (or
        a later version of the stream) was applied already, so the caller skips it."""
        ...


class EventStore(Protocol):
    def transaction(self) -> AsyncContextManager[Transaction]: ...

    def command(self) -> AsyncContextManager[Transaction]:
        """A command's transaction (commands.execute): the same outcome as `transaction`;
        a store may write it in fewer round trips (its appends then get their positions and
        ids when written: the command sees their versions)."""
        ...

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[StoredEvent]: ...

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]: ...

    async def find_request(self, request_id: str) -> RequestRecord | None: ...

    async def outbox_backlog(self) -> int: ...
