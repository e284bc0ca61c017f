"""An in-memory event store for unit tests of domain and application logic.

Same contract as the PostgreSQL store (tests/contract runs one suite against both).
Transactions are serialised by a lock and staged until commit, so a failed command
leaves nothing behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ganshou_common.eventstore.model import (
    ANY_VERSION,
    Metadata,
    RequestAlreadyRecorded,
    RequestRecord,
    StoredEvent,
    StreamAppend,
    StreamVersionConflict,
)
from ganshou_common.ids import new_event_id


@dataclass
class _State:
    events: list[StoredEvent] = field(default_factory=list)
    streams: dict[str, list[StoredEvent]] = field(default_factory=dict)
    requests: dict[str, RequestRecord] = field(default_factory=dict)
    checkpoints: dict[tuple[str, str], int] = field(default_factory=dict)
    outbox: list[int] = field(default_factory=list)
    next_position: int = 1


class MemoryTransaction:
    def __init__(self, state: _State):
        self._state = state
        self._events: list[StoredEvent] = []
        self._requests: dict[str, RequestRecord] = {}
        self._checkpoints: dict[tuple[str, str], int] = {}
        self._next_position = state.next_position

    def _stream(self, stream_id: str) -> list[StoredEvent]:
        return self._state.streams.get(stream_id, []) + [e for e in self._events if e.stream_id == stream_id]

    async def stream_version(self, stream_id: str) -> int:
        stream = self._stream(stream_id)
        return stream[-1].version if stream else 0

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[StoredEvent]:
        return [e for e in self._stream(stream_id) if e.version > after_version]

    async def append(self, append: StreamAppend, meta: Metadata = Metadata()) -> list[StoredEvent]:
        head = await self.stream_version(append.stream_id)
        if append.expected_version != ANY_VERSION and append.expected_version != head:
            raise StreamVersionConflict(append.stream_id, append.expected_version, head)
        now = datetime.now(UTC)
        stored = []
        for i, ev in enumerate(append.events, start=1):
            stored.append(
                StoredEvent(
                    position=self._next_position, event_id=new_event_id(), stream_id=append.stream_id,
                    stream_type=append.stream_type, version=head + i, event_type=ev.event_type,
                    payload=ev.payload, community_id=ev.community_id, occurred_at=ev.occurred_at or now,
                    recorded_at=now, metadata=meta,
                )
            )
            self._next_position += 1
        self._events.extend(stored)
        return stored

    async def append_many(self, appends: list[StreamAppend], meta: Metadata = Metadata()) -> list[StoredEvent]:
        if len({a.stream_id for a in appends}) != len(appends):
            raise ValueError("append_many takes each stream once")
        for a in appends:  # check every stream first: all or nothing
            head = await self.stream_version(a.stream_id)
            if a.expected_version not in (ANY_VERSION, head):
                raise StreamVersionConflict(a.stream_id, a.expected_version, head)
        return [e for a in appends for e in await self.append(a, meta)]

    async def find_request(self, request_id: str) -> RequestRecord | None:
        return self._requests.get(request_id) or self._state.requests.get(request_id)

    async def record_request(self, request_id: str, fingerprint: str, result: bytes) -> None:
        if request_id in self._state.requests or request_id in self._requests:
            raise RequestAlreadyRecorded(request_id)
        self._requests[request_id] = RequestRecord(request_id, fingerprint, result)

    async def claim(self, consumer: str, stream_id: str, version: int) -> bool:
        key = (consumer, stream_id)
        if version <= self._checkpoints.get(key, self._state.checkpoints.get(key, 0)):
            return False
        self._checkpoints[key] = version
        return True

    def _commit(self) -> None:
        s = self._state
        for e in self._events:
            s.events.append(e)
            s.streams.setdefault(e.stream_id, []).append(e)
            s.outbox.append(e.position)
        s.requests.update(self._requests)
        s.checkpoints.update(self._checkpoints)
        s.next_position = self._next_position


class MemoryEventStore:
    def __init__(self) -> None:
        self._state = _State()
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[MemoryTransaction]:
        async with self._lock:
            tx = MemoryTransaction(self._state)
            yield tx
            tx._commit()

    command = transaction

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[StoredEvent]:
        return [e for e in self._state.streams.get(stream_id, []) if e.version > after_version]

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        return [e for e in self._state.events if e.position > after_position][:limit]

    async def find_request(self, request_id: str) -> RequestRecord | None:
        return self._state.requests.get(request_id)

    async def outbox_backlog(self) -> int:
        return len(self._state.outbox)

    def take_outbox(self) -> list[StoredEvent]:
        """Unit tests' stand-in for the relay: the events recorded for publishing, once."""
        by_pos = {e.position: e for e in self._state.events}
        taken = [by_pos[p] for p in self._state.outbox]
        self._state.outbox.clear()
        return taken
