"""Check the standard gRPC health of servers: `python -m ganshou_common.health_check
host:port… [--tls]`; exit 1 naming each one that is not SERVING (the Helm test runs it)."""

from __future__ import annotations

import asyncio
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


async def check(target: str, tls: bool) -> str | None:
    channel = grpc.aio.secure_channel(target, grpc.ssl_channel_credentials()) if tls else \
        grpc.aio.insecure_channel(target)
    try:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        return None if reply.status == health_pb2.HealthCheckResponse.SERVING else \
            f"{target}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
    except grpc.aio.AioRpcError as exc:
        return f"{target}: {exc.code().name} {exc.details()}"
    finally:
        await channel.close()


async def main(argv: list[str]) -> int:
    tls = "--tls" in argv
    targets = [a for a in argv if not a.startswith("--")]
    failures = [f for f in await asyncio.gather(*(check(t, tls) for t in targets)) if f]
    for f in failures:
        print(f"not serving: {f}")
    print(f"{len(targets) - len(failures)} of {len(targets)} servers SERVING")
    return 1 if failures or not targets else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(sys.argv[1:])))
