"""ImportHouseholds through one intake server (real gRPC, PostgreSQL; the importing client a
process of its own), beside plain asyncpg batched inserts of the same rows and a bare COPY,
in one run.

    uv run python bench/import_households.py [--households 20000] [--tiny]

Each household carries one resident: 2 events (HouseholdRegistered, ResidentRegistered),
two sealed personal-data keys, read-model rows and outbox rows. Writes
bench/results/import_households.json with the machine's description. Never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from integration.cpu import cpu_seconds, postgres_pids  # noqa: E402
from machine import describe  # noqa: E402

from ganshou.common.v1 import types_pb2 as t  # noqa: E402
from ganshou.intake.v1 import events_pb2 as ev  # noqa: E402
from ganshou.intake.v1 import intake_service_pb2 as api  # noqa: E402
from ganshou.intake.v1 import intake_service_pb2_grpc as rpc  # noqa: E402
from ganshou_common.grpc_scaffold.auth import Role, mint_token  # noqa: E402
from ganshou_common.migrate import migrate  # noqa: E402
from ganshou_common.pii import MasterKey  # noqa: E402
from ganshou_common.testing.fixtures import fresh_database  # noqa: E402
from ganshou_intake.adapters.read_models import SQL_DIR  # noqa: E402
from ganshou_cli.importing import ROWS_PER_MESSAGE  # noqa: E402
from ganshou_intake.app.bulk_import import CHUNK  # noqa: E402

PG_PORT = int(os.environ.get("PG_PORT", "25432"))
RUN = Path(os.environ.get("GANSHOU_RUN", ROOT / ".run"))
SECRET = "bench-secret-0123456789abcdefghij"


def household(n: int) -> api.RegisterHouseholdRequest:
    return api.RegisterHouseholdRequest(
        community_id="c-bench", address=f"张江路{n}号", segments=[t.SEGMENT_LOCAL],
        residents=[api.ResidentInput(name=f"居民{n}", phone=f"138{n % 10**8:08d}", segment=t.SEGMENT_LOCAL)])


async def client(port: int, n: int, per_message: int) -> None:
    """The importing app, in a process of its own (as a real one is): the rows serialised
    before the clock starts (the app's own work, not the server's), `per_message` to a
    message (one in the message's own fields, or in bulk as the CLI sends them), then
    streamed; prints the seconds from its first row to the server's answer."""
    md = (("authorization", "Bearer " + mint_token(SECRET, "bench", Role.TOWN_ADMIN)),)
    request_id = uuid.uuid4().hex
    if per_message == 1:
        rows = [api.ImportHouseholdsRequest(request_id=request_id, row_number=i + 1, household=household(i))
                .SerializeToString() for i in range(n)]
    else:
        rows = [api.ImportHouseholdsRequest(request_id=request_id, rows=[
            api.ImportRow(row_number=i + 1, household=household(i)) for i in range(start, min(n, start + per_message))])
            .SerializeToString() for start in range(0, n, per_message)]

    async def stream():
        for row in rows:
            yield row

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = ch.stream_unary("/ganshou.intake.v1.IntakeService/ImportHouseholds", request_serializer=None,
                               response_deserializer=api.ImportHouseholdsResponse.FromString)
        cpu0, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        result = await call(stream(), metadata=md)
        elapsed, cpu1 = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    assert result.households_imported == n, result.rejected[:3]
    print(json.dumps({"seconds": elapsed, "cpu_s": cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime}))


def postgres_cpu_s() -> float:
    """CPU-seconds of the local stack's PostgreSQL (the postmaster and its live backends: the
    server's pool keeps its connections through the import)."""
    return sum(cpu_seconds({"postgresql": postgres_pids(RUN)}).values())


async def bench_import(dsn: str, n: int, per_message: int) -> dict[str, float]:
    os.environ.update(GANSHOU_TOKEN_SECRET=SECRET, GRPC_PORT="0", GRPC_HOST="127.0.0.1")
    from ganshou_intake.app.bootstrap import Settings, bootstrap

    server, close = await bootstrap(Settings(dsn, MasterKey.from_base64(base64.b64encode(os.urandom(32)).decode()), 8))
    await server.start()
    md = (("authorization", "Bearer " + mint_token(SECRET, "bench", Role.TOWN_ADMIN)),)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            await rpc.IntakeServiceStub(ch).RegisterCommunity(api.RegisterCommunityRequest(
                request_id="c", community_id="c-bench", name="bench", kind=ev.COMMUNITY_KIND_VILLAGE), metadata=md)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--client", str(server.port), "--households", str(n),
            "--rows-per-message", str(per_message),
            stdout=asyncio.subprocess.PIPE)
        cpu0, pg0 = resource.getrusage(resource.RUSAGE_SELF), postgres_cpu_s()
        out, _ = await proc.communicate()
        cpu1, pg1 = resource.getrusage(resource.RUSAGE_SELF), postgres_cpu_s()
        if proc.returncode:
            raise RuntimeError(f"the import client failed ({proc.returncode})")
        answer = json.loads(out.decode().strip().splitlines()[-1])
    finally:
        await server.stop()
        await close()
    million = 1e6 / (2 * n)
    return {"events_per_s": 2 * n / answer["seconds"],
            "cpu_s_per_million_events": {
                "intake": (cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime) * million,
                "postgresql": (pg1 - pg0) * million,
                "client (sending)": answer["cpu_s"] * million}}


async def bench_plain_same_rows(dsn: str, n: int) -> float:
    """What the import writes, written by plain asyncpg with nothing else to do: per chunk
    (as many households as the import's) one transaction of multi-row INSERTs (unnest) into
    the same tables — the subject keys, the events with their outbox rows, the households,
    the residents and the request record — with payloads of the import's sizes."""
    conn = await asyncpg.connect(dsn)
    await conn.execute("INSERT INTO communities (community_id, name, kind) VALUES ('c-bench', 'bench', 1)")
    blob = os.urandom(60)
    started = time.perf_counter()
    for start in range(0, n, CHUNK):
        hs = [str(uuid.uuid4()) for _ in range(start, min(n, start + CHUNK))]
        rs = [str(uuid.uuid4()) for _ in hs]
        streams = [f"household-{h}" for h in hs] + [f"resident-{r}" for r in rs]
        async with conn.transaction():
            await conn.execute("INSERT INTO subject_keys (subject_id, wrapped_key) SELECT * FROM unnest($1::text[], $2::bytea[])",
                               streams, [blob] * len(streams))
            await conn.execute(
                "WITH e AS (INSERT INTO events (event_id, stream_id, stream_type, version, event_type, payload, "
                "community_id, occurred_at) SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], "
                "$5::text[], $6::bytea[], $7::text[], $8::timestamptz[]) RETURNING position) "
                "INSERT INTO outbox (position) SELECT position FROM e",
                [uuid.uuid4() for _ in streams], streams, ["household"] * len(hs) + ["resident"] * len(rs),
                [1] * len(streams), ["ganshou.intake.v1.HouseholdRegistered"] * len(hs) +
                ["ganshou.intake.v1.ResidentRegistered"] * len(rs), [os.urandom(200) for _ in streams],
                ["c-bench"] * len(streams), [datetime.now(UTC)] * len(streams))
            await conn.execute(
                "INSERT INTO households (household_id, community_id, address_sealed, segments, care_groups) "
                "SELECT h, 'c-bench', a, '{1}', '{}' FROM unnest($1::text[], $2::bytea[]) AS t(h, a)", hs, [blob] * len(hs))
            await conn.execute(
                "INSERT INTO residents (resident_id, household_id, community_id, segment, care_groups, name_sealed, "
                "phone_sealed, id_number_sealed) SELECT r, h, 'c-bench', 1, '{}', $3, $3, $3 "
                "FROM unnest($1::text[], $2::text[]) AS t(r, h)", rs, hs, blob)
            await conn.execute("INSERT INTO requests (request_id, fingerprint, result) VALUES ($1, '', $2)",
                               f"plain#{start}", blob)
    elapsed = time.perf_counter() - started
    await conn.close()
    return 2 * n / elapsed


async def bench_plain_copy(dsn: str, n: int) -> float:
    """The floor: bare event-sized rows COPYed into one table with one index."""
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE plain (id uuid PRIMARY KEY, stream text, version int, payload bytea)")
    payload = os.urandom(180)
    started = time.perf_counter()
    for start in range(0, n, CHUNK):
        rows = [(uuid.uuid4(), f"s{i}-{k}", 1, payload) for i in range(start, min(n, start + CHUNK)) for k in (0, 1)]
        async with conn.transaction():
            await conn.copy_records_to_table("plain", records=rows)
    elapsed = time.perf_counter() - started
    await conn.close()
    return 2 * n / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--households", type=int, default=20_000)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "import_households.json")
    parser.add_argument("--client", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--rows-per-message", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        return await client(args.client, args.households, args.rows_per_message)
    n = 200 if args.tiny else args.households
    # Rows by the hundred a message, as the CLI sends them; then a row a message, as before.
    async with fresh_database(PG_PORT) as dsn:
        await migrate(dsn, [SQL_DIR])
        ganshou = await bench_import(dsn, n, ROWS_PER_MESSAGE)
    async with fresh_database(PG_PORT) as dsn:
        await migrate(dsn, [SQL_DIR])
        one_a_message = await bench_import(dsn, n, 1)
    async with fresh_database(PG_PORT) as dsn:
        await migrate(dsn, [SQL_DIR])
        same_rows = await bench_plain_same_rows(dsn, n)
    async with fresh_database(PG_PORT) as dsn:
        copy = await bench_plain_copy(dsn, n)
    result = {"machine": describe(), "households": n, "import_events_per_s": ganshou["events_per_s"],
              "plain_asyncpg_same_rows_events_per_s": same_rows, "ratio_vs_plain_same_rows": ganshou["events_per_s"] / same_rows,
              "plain_asyncpg_copy_events_per_s": copy, "ratio_vs_plain_copy": ganshou["events_per_s"] / copy,
              "cpu_s_per_million_events": ganshou["cpu_s_per_million_events"], "rows_per_message": ROWS_PER_MESSAGE,
              "one_row_a_message": {**one_a_message, "ratio_vs_plain_same_rows": one_a_message["events_per_s"] / same_rows}}
    text = json.dumps(result, indent=2, default=lambda x: round(x, 2))
    print(text)
    if not args.tiny:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    asyncio.run(main())
