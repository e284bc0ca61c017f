"""Stored events ↔ the protobuf EventEnvelope that travels on Kafka."""

from __future__ import annotations

import functools

from google.protobuf.message import Message

from ganshou.common.v1 import envelope_pb2, types_pb2
from ganshou_common.eventstore.model import NewEvent, StoredEvent

TYPE_URL_PREFIX = "type.googleapis.com/"


def new_event(payload: Message, community_id: str = "", occurred_at=None) -> NewEvent:
    """A domain event (a protobuf message) ready to append; its type is its full name."""
    return NewEvent(payload.DESCRIPTOR.full_name, payload.SerializeToString(), community_id, occurred_at)


def to_envelope(event: StoredEvent, source: str) -> envelope_pb2.EventEnvelope:
    env = envelope_pb2.EventEnvelope(
        event_id=str(event.event_id),
        stream_id=event.stream_id,
        stream_type=event.stream_type,
        stream_version=event.version,
        correlation_id=event.metadata.correlation_id,
        causation_id=event.metadata.causation_id,
        actor=types_pb2.Actor(subject=event.metadata.actor_subject, role=event.metadata.actor_role),
        community_id=event.community_id,
        event_type=event.event_type,
        source=source,
    )
    env.occurred_at.FromDatetime(event.occurred_at)
    env.recorded_at.FromDatetime(event.recorded_at)
    env.payload.type_url = TYPE_URL_PREFIX + event.event_type
    env.payload.value = event.payload
    return env


def unpack(env: envelope_pb2.EventEnvelope, message_type: type[Message]) -> Message:
    """The envelope's payload as `message_type`; ValueError when the type does not match."""
    msg = message_type()
    if env.event_type != msg.DESCRIPTOR.full_name or not env.payload.Unpack(msg):
        raise ValueError(f"payload is {env.event_type}, not {msg.DESCRIPTOR.full_name}")
    return msg


def decode_payload(event_type: str, payload: bytes) -> Message:
    """A stored event's payload as its protobuf message (the type must be loaded)."""
    return message_class(event_type).FromString(payload)


@functools.cache
def message_class(event_type: str) -> type[Message]:
    """Looked up once per type: every consumer decodes every event's payload."""
    from google.protobuf import descriptor_pool, message_factory

    return message_factory.GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(event_type))
