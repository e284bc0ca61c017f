"""The metrics service: the faust projection worker, serving GetFigures / WatchFigures
over gRPC and the figures on /metrics, in one process.

    python -m ganshou_metrics worker     (KAFKA_BOOTSTRAP, GRPC_PORT, METRICS_PORT, METRICS_GENERATION,
                                          METRICS_CATCH_UP=0 to leave a new generation's first pass
                                          and a restart's reading of the changelogs to faust,
                                          METRICS_CATCH_UP_PROCESSES: its processes at most, default 2,
                                          one a usable core)

A new generation (a rebuild) first reads the topics outside faust (adapters/catch_up.py),
its share processes folding while this one imports faust; a started one reads its rows back
from its changelogs outside faust (adapters/reload.py).
"""

from __future__ import annotations

import asyncio
import os
import sys
from concurrent.futures import ThreadPoolExecutor

from ganshou_common import logs


def worker() -> None:
    from ganshou_common.config import env, env_int

    bootstrap, generation = env("KAFKA_BOOTSTRAP"), os.environ.get("METRICS_GENERATION", "1")
    partitions = env_int("METRICS_PARTITIONS", 6)
    topics = {s: os.environ[f"METRICS_TOPIC_{s.upper().replace('-', '_')}"]
              for s in ("intake", "casework", "partner-resource")
              if os.environ.get(f"METRICS_TOPIC_{s.upper().replace('-', '_')}")} or None
    if os.environ.get("METRICS_CATCH_UP", "1") == "0":  # the first pass and the reload left to faust
        projection, start = _make_worker(bootstrap, generation, partitions, topics)
        asyncio.run(projection.ensure_changelogs(bootstrap))
        start()
        return

    from ganshou_common.config import usable_cpus
    from ganshou_common.schemas import load_all_schemas
    from ganshou_metrics.adapters import names
    from ganshou_metrics.adapters.catch_up import catch_up
    from ganshou_metrics.adapters.changelog_topics import ensure_changelogs
    from ganshou_metrics.adapters.first_pass import ShareProcess

    # A new generation's first pass runs in shares, a process a usable core, at most
    # METRICS_CATCH_UP_PROCESSES: each holds its share of the rows until the pass ends. The
    # other shares' processes are forked now, before faust's imports and any thread (they exit
    # at once when there is no pass to make), and the pass comes before faust's imports: the
    # other shares fold while this process imports (~1 s of one core).
    load_all_schemas()
    processes = min(usable_cpus(), env_int("METRICS_CATCH_UP_PROCESSES", 2))
    spawned = ShareProcess.start(processes - 1, "metrics-worker", os.environ.get("LOG_LEVEL", "INFO"))
    changelogs = names.changelogs(generation, topics)
    # faust's imports, its app and the gRPC server made in a thread from now on (the processes
    # are forked), while the other shares fold: made after the pass, they held its end up
    # ~0.1 s. Nothing there asks for an event loop (none runs in that thread): faust's worker
    # runs them in its own once the pass's is gone.
    maker = ThreadPoolExecutor(1, thread_name_prefix="make-worker")
    making = maker.submit(_make_worker, bootstrap, generation, partitions, topics)
    maker.shutdown(wait=False)  # its one job still runs

    async def first_pass():
        # The changelogs are made while the shares fold: the pass writes to them only after.
        made = asyncio.ensure_future(ensure_changelogs(bootstrap, changelogs.values(), partitions))
        try:
            done = await catch_up(bootstrap, names.app_id(generation), changelogs, partitions, spawned,
                                  meanwhile=making.result, changelogs_made=made)
        finally:
            existing = await made  # made in any case: faust declares none of them
        return existing, done

    existing, done = asyncio.run(first_pass())
    projection, start = making.result()
    projection.knows(existing)
    if done is not None:
        projection.passed(done)
    else:  # a started generation: its rows read back from its changelogs, outside faust
        asyncio.run(projection.reload(bootstrap))
    start()


def _make_worker(bootstrap: str, generation: str, partitions: int, topics: dict[str, str] | None):
    """The projection (faust's app), its gRPC server and /metrics; and how to start faust's
    worker with them."""
    import faust
    import uvloop
    from mode import Service
    from prometheus_client import REGISTRY

    from ganshou.metrics.v1 import metrics_service_pb2_grpc as rpc
    from ganshou_common.config import env_int
    from ganshou_common.grpc_scaffold.server import GrpcServer
    from ganshou_common.grpc_scaffold.settings import server_settings_from_env
    from ganshou_common.grpc_scaffold.tokens import verifier_from_env
    from ganshou_common.metrics_http import serve_metrics
    from ganshou_metrics.adapters.faust_app import Projection
    from ganshou_metrics.adapters.prometheus import FiguresCollector
    from ganshou_metrics.api.servicer import SERVICE, MetricsServicer

    projection = Projection(bootstrap, generation, partitions, topics)
    server = GrpcServer(server_settings_from_env(), verifier_from_env())
    servicer = MetricsServicer(projection)
    server.add(servicer, rpc.add_MetricsServiceServicer_to_server, SERVICE)
    # /metrics from now on (the pass's and faust's own counters); the figures only once the
    # worker serves them: while a pass or a restart's reading back runs, none rather than zeros
    # (the dashboards would show a town emptied).
    figures, exported = FiguresCollector(lambda: projection.figures), False
    serve_metrics(env_int("METRICS_PORT", 9100))

    class Api(Service):
        """The gRPC server lives and dies with the faust worker."""

        async def on_start(self) -> None:
            await server.start()
            nonlocal exported
            if not exported:  # once, should faust start this service again
                REGISTRY.register(figures)
                exported = True

        async def on_stop(self) -> None:
            servicer.stop_watchers()
            await server.stop()

    projection.app.service(Api)

    def start() -> None:
        # uvloop for faust's loops too (its worker's and its consumer thread's), as every other
        # process: the loop's own bookkeeping is a large part of each event (docs/benchmarks.md).
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        faust.Worker(projection.app, loglevel=os.environ.get("LOG_LEVEL", "INFO").lower(), quiet=True,
                     override_logging=False).execute_from_commandline()

    return projection, start


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
