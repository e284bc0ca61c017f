"""Whether a published event makes sense before a consumer acts on it: its payload
decodes as its declared type, the payload names the entity of its stream (some `*_id`
field's value is part of the stream id), and its community is the envelope's. A message
that fails is poison: dead-lettered with the reason, never applied."""

from __future__ import annotations

from google.protobuf.message import DecodeError, Message

from ganshou.common.v1 import envelope_pb2
from ganshou_common.codec import decode_payload


class Nonsense(Exception):
    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


def checked_payload(env: envelope_pb2.EventEnvelope) -> Message:
    """The envelope's payload, decoded; raises Nonsense when it does not make sense."""
    try:
        msg = decode_payload(env.event_type, env.payload.value)
    except (DecodeError, KeyError) as exc:
        raise Nonsense("undecodable_payload", f"{env.event_type}: {exc}") from None
    ids = [getattr(msg, f.name) for f in msg.DESCRIPTOR.fields
           if f.name.endswith("_id") and f.type == f.TYPE_STRING and not f.is_repeated]
    if ids and not any(v and v in env.stream_id for v in ids):
        raise Nonsense("payload_not_of_its_stream", f"{env.event_type} on {env.stream_id!r} names none of its ids")
    community = getattr(msg, "community_id", None) if "community_id" in msg.DESCRIPTOR.fields_by_name else None
    if community is not None and env.community_id and community != env.community_id:
        raise Nonsense("community_mismatch", f"payload {community!r}, envelope {env.community_id!r}")
    return msg
