"""What makes a published event poison before any consumer acts on it."""

from __future__ import annotations

import pytest

from ganshou.common.v1 import envelope_pb2
from ganshou.common.v1 import types_pb2
from ganshou.intake.v1 import events_pb2 as it
from ganshou.partner_resource.v1 import events_pb2 as pr
from ganshou_common.schemas import load_all_schemas
from ganshou_common.sense import PLAUSIBLE, Nonsense, checked_payload


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


def test_counts_and_amounts_beyond_any_towns_are_nonsense() -> None:
    """A sum of them would overflow the figures' int64 (one such delivery once left GetFigures failing)."""
    load_all_schemas()
    delivered = pr.ServiceDelivered(delivery_id="v1", community_id="c1", person_times=PLAUSIBLE)
    assert checked_payload(env(delivered, "delivery-v1", "c1")) == delivered
    delivered.person_times = 2**63 - 1
    paid = pr.AidDisbursed(disbursement_id="a1", amount=types_pb2.Money(fen=-PLAUSIBLE - 1))
    for e in (env(delivered, "delivery-v1", "c1"), env(paid, "disbursement-a1")):
        with pytest.raises(Nonsense) as caught:
            checked_payload(e)
        assert caught.value.reason == "implausible_number"
