"""The metrics service: the faust projection worker, serving GetFigures / WatchFigures
over gRPC and the figures on /metrics, in one process.

    python -m ganshou_metrics worker     (KAFKA_BOOTSTRAP, GRPC_PORT, METRICS_PORT, METRICS_GENERATION,
                                          METRICS_CATCH_UP=0 to leave a new generation's first pass
                                          and a restart's reading of the changelogs to faust,
                                          METRICS_CATCH_UP_PROCESSES: its processes at most, default 2,
                                          one a usable core)

A new generation (a rebuild) first reads the topics outside faust (adapters/catch_up.py);
a started one reads its rows back from its changelogs outside faust (adapters/reload.py).
"""

from __future__ import annotations

import asyncio
import os
import sys

from ganshou_common import logs


def worker() -> None:
    catching_up = os.environ.get("METRICS_CATCH_UP", "1") != "0"  # 0: the first pass and the reload to faust
    spawned = []
    if catching_up:
        from ganshou_common.config import env_int, usable_cpus
        from ganshou_metrics.adapters.first_pass import ShareProcess

        # The first pass runs in shares, a process a usable core, at most
        # METRICS_CATCH_UP_PROCESSES: each holds its share of the rows besides an interpreter
        # (~60 MB) until the pass ends. The other shares' processes start now, their start
        # overlapping this one's imports; they exit at once when there is no pass to make.
        processes = min(usable_cpus(), env_int("METRICS_CATCH_UP_PROCESSES", 2))
        spawned = ShareProcess.start(processes - 1, "metrics-worker", os.environ.get("LOG_LEVEL", "INFO"))

    import faust
    import uvloop
    from mode import Service
    from prometheus_client import REGISTRY

    from ganshou.metrics.v1 import metrics_service_pb2_grpc as rpc
    from ganshou_common.config import env, env_int
    from ganshou_common.grpc_scaffold.server import GrpcServer
    from ganshou_common.grpc_scaffold.settings import server_settings_from_env
    from ganshou_common.grpc_scaffold.tokens import verifier_from_env
    from ganshou_common.metrics_http import serve_metrics
    from ganshou_metrics.adapters.faust_app import Projection
    from ganshou_metrics.adapters.prometheus import FiguresCollector
    from ganshou_metrics.api.servicer import SERVICE, MetricsServicer

    topics = {s: os.environ[f"METRICS_TOPIC_{s.upper().replace('-', '_')}"]
              for s in ("intake", "casework", "partner-resource")
              if os.environ.get(f"METRICS_TOPIC_{s.upper().replace('-', '_')}")}
    projection = Projection(env("KAFKA_BOOTSTRAP"), os.environ.get("METRICS_GENERATION", "1"),
                            env_int("METRICS_PARTITIONS", 6), topics or None)
    server = GrpcServer(server_settings_from_env(), verifier_from_env())
    servicer = MetricsServicer(projection)
    server.add(servicer, rpc.add_MetricsServiceServicer_to_server, SERVICE)
    REGISTRY.register(FiguresCollector(lambda: projection.figures))
    serve_metrics(env_int("METRICS_PORT", 9100))

    class Api(Service):
        """The gRPC server lives and dies with the faust worker."""

        async def on_start(self) -> None:
            await server.start()

        async def on_stop(self) -> None:
            servicer.stop_watchers()
            await server.stop()

    projection.app.service(Api)
    asyncio.run(projection.ensure_changelogs(env("KAFKA_BOOTSTRAP")))
    if catching_up:  # a new generation's first pass, or a started one's rows read back, outside faust
        asyncio.run(projection.catch_up(env("KAFKA_BOOTSTRAP"), spawned))
    # uvloop for faust's loops too (its worker's and its consumer thread's), as every other
    # process: the loop's own bookkeeping is a large part of each event (docs/benchmarks.md).
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    faust.Worker(projection.app, loglevel=os.environ.get("LOG_LEVEL", "INFO").lower(), quiet=True,
                 override_logging=False).execute_from_commandline()


def main(argv: list[str] | None = None) -> None:
    command = (argv or sys.argv[1:] or ["worker"])[0]
    logs.configure(f"metrics-{command}", os.environ.get("LOG_LEVEL", "INFO"))
    if command == "worker":
        worker()
    elif command == "migrate":
        print("metrics keeps no database: nothing to migrate")
    else:
        raise SystemExit(f"unknown command {command!r}: worker | migrate")


if __name__ == "__main__":
    main()
