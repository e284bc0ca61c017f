"""ImportHouseholds through one intake server (real gRPC, PostgreSQL), beside plain asyncpg
batched inserts of the same rows, in one run.

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
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import grpc

sys.path.insert(0, str(Path(__file__).parent))
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

PG_PORT = int(os.environ.get("PG_PORT", "25432"))
SECRET = "bench-secret-0123456789abcdefghij"


def household(n: int) -> api.RegisterHouseholdRequest:
    return api.RegisterHouseholdRequest(
        community_id="c-bench", address=f"张江路{n}号", segments=[t.SEGMENT_LOCAL],
        residents=[api.ResidentInput(name=f"居民{n}", phone=f"138{n % 10**8:08d}", segment=t.SEGMENT_LOCAL)])


async def bench_import(dsn: str, n: int) -> float:
    os.environ.update(GANSHOU_TOKEN_SECRET=SECRET, GRPC_PORT="0", GRPC_HOST="127.0.0.1")
    from ganshou_intake.app.bootstrap import Settings, bootstrap

    server, close = await bootstrap(Settings(dsn, MasterKey.from_base64(base64.b64encode(os.urandom(32)).decode()), 8))
    await server.start()
    md = (("authorization", "Bearer " + mint_token(SECRET, "bench", Role.TOWN_ADMIN)),)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            stub = rpc.IntakeServiceStub(ch)
            await stub.RegisterCommunity(api.RegisterCommunityRequest(
                request_id="c", community_id="c-bench", name="bench", kind=ev.COMMUNITY_KIND_VILLAGE), metadata=md)
            request_id = uuid.uuid4().hex

            async def rows():
                for i in range(n):
                    yield api.ImportHouseholdsRequest(request_id=request_id, row_number=i + 1, household=household(i))

            started = time.perf_counter()
            result = await stub.ImportHouseholds(rows(), metadata=md)
            elapsed = time.perf_counter() - started
            assert result.households_imported == n, result.rejected[:3]
    finally:
        await server.stop()
        await close()
    return 2 * n / elapsed


async def bench_plain(dsn: str, n: int) -> float:
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE plain (id uuid PRIMARY KEY, stream text, version int, payload bytea)")
    payload = os.urandom(180)
    started = time.perf_counter()
    for start in range(0, n, 500):
        rows = [(uuid.uuid4(), f"s{i}-{k}", 1, payload) for i in range(start, min(n, start + 500)) for k in (0, 1)]
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
    args = parser.parse_args()
    n = 200 if args.tiny else args.households
    async with fresh_database(PG_PORT) as dsn:
        await migrate(dsn, [SQL_DIR])
        grpc_rate = await bench_import(dsn, n)
    async with fresh_database(PG_PORT) as dsn:
        plain_rate = await bench_plain(dsn, n)
    result = {"machine": describe(), "households": n, "import_events_per_s": grpc_rate,
              "plain_asyncpg_copy_events_per_s": plain_rate, "ratio_vs_plain": grpc_rate / plain_rate}
    text = json.dumps(result, indent=2, default=lambda x: round(x, 2))
    print(text)
    if not args.tiny:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    asyncio.run(main())
