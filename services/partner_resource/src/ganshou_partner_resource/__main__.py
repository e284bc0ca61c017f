"""The partner-resource service's processes.

    python -m ganshou_partner_resource serve     gRPC server (GRPC_PORT), /metrics (METRICS_PORT)
    python -m ganshou_partner_resource worker    matching and intake reactions (consumer)
    python -m ganshou_partner_resource migrate   apply the database migrations (DATABASE_URL)
    python -m ganshou_partner_resource relay     outbox relay to ganshou.partner-resource.events.v1
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from ganshou_common import logs
from ganshou_common.config import env, env_int
from ganshou_common.metrics_http import serve_metrics
from ganshou_common.migrate import migrate

SERVICE = "partner-resource"
SQL_DIR = Path(__file__).parent / "adapters" / "sql"


async def serve() -> None:
    from ganshou_partner_resource.app.bootstrap import build_app, build_server

    serve_metrics(env_int("METRICS_PORT", 9100))
    app = await build_app(env("DATABASE_URL"))
    server = build_server(app)
    try:
        await server.start()
        await server.serve_until_signal()
    finally:
        await app.store.close()


async def worker() -> None:
    from ganshou_partner_resource.app.bootstrap import build_app, build_consumer

    serve_metrics(env_int("METRICS_PORT", 9100))
    app = await build_app(env("DATABASE_URL"))
    consumer = build_consumer(app, env("KAFKA_BOOTSTRAP"))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, consumer.stop)
    try:
        await consumer.run()
    finally:
        await app.store.close()


def main(argv: list[str] | None = None) -> None:
    command = (argv or sys.argv[1:] or ["serve"])[0]
    logs.configure(f"{SERVICE}-{command}", os.environ.get("LOG_LEVEL", "INFO"))
    if command == "serve":
        asyncio.run(serve())
    elif command == "worker":
        asyncio.run(worker())
    elif command == "migrate":
        applied = asyncio.run(migrate(env("DATABASE_URL"), [SQL_DIR]))
        print(f"partner-resource migrations applied: {applied or 'none (up to date)'}")
    elif command == "relay":
        os.environ.setdefault("GANSHOU_SERVICE", SERVICE)
        from ganshou_common.outbox.__main__ import main as relay_main

        asyncio.run(relay_main())
    else:
        raise SystemExit(f"unknown command {command!r}: serve | worker | migrate | relay")


if __name__ == "__main__":
    main()
