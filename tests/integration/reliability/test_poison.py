"""Poison on every consumed topic — bytes that are not an event, an event type nobody
knows, a well-formed event whose payload makes no sense — is recorded on the consumer's
dead-letter topic with its reason and counted; every consumer goes on with what follows,
and no legitimate event is ever taken for poison."""

from __future__ import annotations

import re
import urllib.request
import uuid
from collections import Counter

import pytest
from aiokafka import AIOKafkaProducer
from google.protobuf import any_pb2

from ganshou.casework.v1 import events_pb2 as cw
from ganshou.common.v1 import envelope_pb2
from ganshou.intake.v1 import events_pb2 as it
from ganshou.metrics.v1 import metrics_service_pb2 as mapi
from ganshou.partner_resource.v1 import events_pb2 as pr
from ganshou_common.testing.kafka import read_records
from ganshou_common.topics import dead_letter_topic

from . import truth
from .loadgen import Client, Ledger, Mix

pytestmark = pytest.mark.integration

# Nonsense: a known type every consumer of the topic handles, naming none of its ids.
NONSENSE = {
    "intake": [it.DemandRaised(category="parking", description="x"), it.ResidentRegistered(segment=1)],
    "casework": [cw.PartnerHelpRequested(need_category="clinic")],
    "partner-resource": [pr.OfferingMatched(need_category="clinic")],
}
HANDLES = {  # consumer → the nonsense types it acts on (the others it ignores, as it should)
    "casework": {"DemandRaised", "OfferingMatched"},
    "casework-partners": {"PartnerRegistered", "PartnerLeft"},
    "partner-resource": {"ResidentRegistered", "PartnerHelpRequested"},
}
CONSUMES = {"casework": ("intake", "partner-resource"), "casework-partners": ("partner-resource",),
            "partner-resource": ("intake", "casework")}
DEAD_LETTER_TOPIC = {"casework-partners": "casework"}  # casework's second consumer uses casework's


def envelope(type_name: str, payload: bytes, stream: str = "") -> bytes:
    stream = stream or f"x-{uuid.uuid4().hex[:8]}"
    return envelope_pb2.EventEnvelope(
        event_id=str(uuid.uuid4()), stream_id=stream, stream_type="x", stream_version=1, event_type=type_name,
        payload=any_pb2.Any(type_url=f"type.googleapis.com/{type_name}", value=payload)).SerializeToString()


def expected_dead_letters() -> dict[str, Counter]:
    out: dict[str, Counter] = {c: Counter() for c in (*CONSUMES, "metrics")}
    for topic, nonsense in NONSENSE.items():
        out["metrics"].update({"undecodable": 1, "unknown_event_type": 1, "payload_not_of_its_stream": len(nonsense)})
        for consumer, topics in CONSUMES.items():
            if topic in topics:
                acted = sum(type(m).__name__ in HANDLES[consumer] for m in nonsense)
                out[consumer].update({"undecodable": 1, "unknown_event_type": 1, "payload_not_of_its_stream": acted})
    return out


async def test_poison_is_dead_lettered_and_consumers_go_on(rsystem, report) -> None:
    ledger = Ledger()
    client = Client({s: rsystem.procs[s].grpc_port for s in ("intake", "casework", "partner")}, rsystem.auth(), ledger)
    try:
        mix = await Mix.set_up(client, 2, 3)
        producer = AIOKafkaProducer(bootstrap_servers=rsystem.kafka, acks="all")
        await producer.start()
        try:
            for topic, nonsense in NONSENSE.items():
                name = rsystem.topics[topic]
                await producer.send_and_wait(name, b"\x00\xffnot an envelope", key=b"poison-1")
                await producer.send_and_wait(name, envelope("ganshou.nowhere.v1.Nothing", b"\x08\x01"), key=b"poison-2")
                for m in nonsense:
                    await producer.send_and_wait(name, envelope(m.DESCRIPTOR.full_name, m.SerializeToString()),
                                                 key=b"poison-3")
        finally:
            await producer.stop()
        # After the poison, legitimate work still flows through every consumer.
        await mix.run(rate=20, duration_s=8)
    finally:
        await client.close()
    await truth.settled(rsystem, timeout_s=120)
    sql = await truth.sql_figures(rsystem)
    town = await rsystem.metrics().GetFigures(mapi.GetFiguresRequest(), metadata=rsystem.auth())
    assert not truth.differences(sql.figures(), truth.metrics_figures(town.figures))

    ours = set(rsystem.topics.values())
    expected = expected_dead_letters()
    got: dict[str, Counter] = {}
    for consumer in expected:
        records = await read_records(rsystem.kafka, dead_letter_topic(DEAD_LETTER_TOPIC.get(consumer, consumer)))
        mine = [dict(r.headers) for r in records if dict(r.headers).get("source_topic", b"").decode() in ours
                and (consumer == "metrics" or dict(r.headers)["consumer"].decode() == consumer)]
        got[consumer] = Counter(h["reason"].decode() for h in mine)
        assert all(h.get("detail") for h in mine)
    assert got == expected, f"dead letters by consumer and reason: {got} != {expected}"

    counted = {}
    for proc, consumer in (("casework-worker", "casework"), ("partner-worker", "partner-resource"), ("metrics", "metrics-g")):
        text = urllib.request.urlopen(f"http://127.0.0.1:{rsystem.procs[proc].metrics_port}/metrics").read().decode()
        counted[proc] = sum(float(v) for v in re.findall(
            rf'ganshou_consumer_dead_letters_total{{consumer="{consumer}[^"]*",reason="[^"]+"}} ([0-9.]+)', text))
    assert counted == {"casework-worker": sum(expected["casework"].values()) + sum(expected["casework-partners"].values()),
                       "partner-worker": sum(expected["partner-resource"].values()),
                       "metrics": sum(expected["metrics"].values())}, counted
    report.add("Poison messages", topics=len(NONSENSE), sent=sum(2 + len(v) for v in NONSENSE.values()),
               dead_letters={k: dict(v) for k, v in got.items()}, counted_by_metric=counted,
               commands_after_poison=sum(len(v) for v in ledger.acked.values()))
