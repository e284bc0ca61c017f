"""Event store: streams with optimistic concurrency, request records, outbox, checkpoints."""

from ganshou_common.eventstore.memory import MemoryEventStore
from ganshou_common.eventstore.model import (
    ANY_VERSION,
    NO_STREAM,
    EventStore,
    Metadata,
    NewEvent,
    RequestAlreadyRecorded,
    RequestRecord,
    StoredEvent,
    StreamAppend,
    StreamVersionConflict,
    Transaction,
)

__all__ = [
    "ANY_VERSION", "NO_STREAM", "EventStore", "MemoryEventStore", "Metadata", "NewEvent",
    "RequestAlreadyRecorded", "RequestRecord", "StoredEvent", "StreamAppend",
    "StreamVersionConflict", "Transaction",
]
