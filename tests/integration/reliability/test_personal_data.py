"""Personal data: no plaintext personal value in any Kafka message, any database row
(events and read models alike), any log line or any metric; an erasure makes the person
unreadable everywhere while every figure but the erasure count stays as it was; every
read of personal data is in the audit trail."""

from __future__ import annotations

import urllib.request

import asyncpg
import pytest

from ganshou.intake.v1 import intake_service_pb2 as iapi
from ganshou.metrics.v1 import metrics_service_pb2 as mapi
from ganshou_common.testing.kafka import read_records
from ganshou_common.topics import dead_letter_topic

from . import truth
from .loadgen import Client, Ledger, Mix, rid

pytestmark = pytest.mark.integration


def leaks(blob: bytes, values: list[str]) -> list[str]:
    """Personal values found in `blob`, as text or as the hex PostgreSQL prints bytea in."""
    text = blob.decode("utf-8", "replace")
    return [v for v in values if v in text or v.encode().hex() in text]


async def test_no_plaintext_anywhere_erasure_and_audit(rsystem, report, soak) -> None:
    ledger = Ledger()
    client = Client({s: rsystem.procs[s].grpc_port for s in ("intake", "casework", "partner")}, rsystem.auth(), ledger)
    try:
        mix = await Mix.set_up(client, 3 if soak else 2, 10 if soak else 4)
        await mix.run(rate=30, duration_s=60 if soak else 8)
        # Reads of personal data, each with its purpose: all audited.
        victim_household, victim = mix.town.communities[0].households[0]
        reads = 5
        for _ in range(reads):
            got = await client.call("intake", "GetResident", iapi.GetResidentRequest(resident_id=victim, purpose="核查"),
                                    command=False)
            assert got.resident.name and got.resident.name in ledger.personal
        await truth.settled(rsystem, timeout_s=120)
        before = await rsystem.metrics().GetFigures(mapi.GetFiguresRequest(), metadata=rsystem.auth())
        assert await client.call("intake", "EraseResident", iapi.EraseResidentRequest(
            request_id=rid(), resident_id=victim, reason="本人申请"))
        after_read = (await client.call("intake", "GetResident", iapi.GetResidentRequest(
            resident_id=victim, purpose="核查"), command=False)).resident
    finally:
        await client.close()
    assert after_read.erased and after_read.name == after_read.phone == after_read.id_number == "[erased]"
    await truth.settled(rsystem, timeout_s=120)
    after = await rsystem.metrics().GetFigures(mapi.GetFiguresRequest(), metadata=rsystem.auth())
    expected = mapi.Figures()
    expected.CopyFrom(before.figures)
    expected.residents_erased += 1
    assert after.figures == expected, "an erasure changed a figure other than residents_erased"

    values = ledger.personal
    found: dict[str, list[str]] = {}
    scanned = {"kafka_messages": 0, "database_rows": 0, "log_lines": 0, "metric_lines": 0}
    topics = [*rsystem.topics.values(), *(dead_letter_topic(s) for s in ("casework", "partner-resource", "metrics"))]
    for topic in topics:
        for rec in await read_records(rsystem.kafka, topic):
            scanned["kafka_messages"] += 1
            blob = (rec.value or b"") + (rec.key or b"") + b"".join(v for _, v in rec.headers or ())
            if hit := leaks(blob, values):
                found.setdefault(f"kafka {topic}", []).extend(hit)
    for service in ("intake", "casework", "partner"):
        conn = await asyncpg.connect(rsystem.procs[service].env["DATABASE_URL"])
        try:
            tables = [r["tablename"] for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
            for table in tables:
                for row in await conn.fetch(f'SELECT t::text AS row FROM "{table}" t'):
                    scanned["database_rows"] += 1
                    if hit := leaks(row["row"].encode(), values):
                        found.setdefault(f"{service}.{table}", []).extend(hit)
        finally:
            await conn.close()
    for log in rsystem.logs.glob("*.log"):
        for line in log.read_bytes().splitlines():
            scanned["log_lines"] += 1
            if hit := leaks(line, values):
                found.setdefault(f"log {log.name}", []).extend(hit)
    for name, p in rsystem.procs.items():
        text = urllib.request.urlopen(f"http://127.0.0.1:{p.metrics_port}/metrics").read()
        scanned["metric_lines"] += text.count(b"\n")
        if hit := leaks(text, values):
            found.setdefault(f"metrics {name}", []).extend(hit)

    conn = await asyncpg.connect(rsystem.procs["intake"].env["DATABASE_URL"])
    try:
        audited = await conn.fetchval("SELECT count(*) FROM personal_data_access WHERE subject_id = $1",
                                      f"resident-{victim}")
    finally:
        await conn.close()
    report.add("Personal data", personal_values_sent=len(values), scanned=scanned,
               plaintext_found=found or "none", reads=reads + 1, reads_audited=audited,
               erasure="unreadable after; every figure but residents_erased unchanged")
    assert not found, found
    assert audited >= reads, f"{audited} audited reads of {reads}"
