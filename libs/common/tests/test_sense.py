"""What makes a published event poison before any consumer acts on it."""

from __future__ import annotations

import pytest

from ganshou.common.v1 import envelope_pb2
from ganshou.intake.v1 import events_pb2 as it
from ganshou_common.schemas import load_all_schemas
from ganshou_common.sense import Nonsense, checked_payload


def env(msg, stream: str, community: str = "", payload: bytes | None = None) -> envelope_pb2.EventEnvelope:
    e = envelope_pb2.EventEnvelope(stream_id=stream, stream_version=1, event_type=msg.DESCRIPTOR.full_name,
                                   community_id=community)
    e.payload.Pack(msg)
    if payload is not None:
        e.payload.value = payload
    return e


def test_sense() -> None:
    load_all_schemas()
    good = it.DemandRaised(demand_id="d1", community_id="c1", category="parking")
    assert checked_payload(env(good, "demand-d1", "c1")) == good
    cases = {
        "undecodable_payload": env(good, "demand-d1", payload=b"\xff\xff\xff"),
        "payload_not_of_its_stream": env(it.DemandRaised(category="parking"), "demand-d1"),
        "community_mismatch": env(good, "demand-d1", "c2"),
    }
    for reason, e in cases.items():
        with pytest.raises(Nonsense) as caught:
            checked_payload(e)
        assert caught.value.reason == reason
