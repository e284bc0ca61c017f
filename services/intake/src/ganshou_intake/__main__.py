"""The intake service's processes.

    python -m ganshou_intake serve     the gRPC server (GRPC_PORT) and its /metrics (METRICS_PORT)
    python -m ganshou_intake migrate   apply the database migrations (DATABASE_URL)
    python -m ganshou_intake relay     the outbox relay to ganshou.intake.events.v1
"""

from __future__ import annotations

import asyncio
import os
import sys

from ganshou_common import logs
from ganshou_common.config import env, env_int
from ganshou_common.metrics_http import serve_metrics
from ganshou_common.migrate import migrate
from ganshou_intake.adapters.read_models import SQL_DIR

SERVICE = "intake"


async def serve() -> None:
    from ganshou_intake.app.bootstrap import Settings, bootstrap

    settings = Settings.from_env()
    serve_metrics(env_int("METRICS_PORT", 9100))
    server, store = await bootstrap(settings)
    try:
        await server.start()
        await server.serve_until_signal()
    finally:
        await store.close()


def main(argv: list[str] | None = None) -> None:
    command = (argv or sys.argv[1:] or ["serve"])[0]
    logs.configure(SERVICE, os.environ.get("LOG_LEVEL", "INFO"))
    if command == "serve":
        asyncio.run(serve())
    elif command == "migrate":
        applied = asyncio.run(migrate(env("DATABASE_URL"), [SQL_DIR]))
        print(f"intake migrations applied: {applied or 'none (up to date)'}")
    elif command == "relay":
        os.environ.setdefault("GANSHOU_SERVICE", SERVICE)
        from ganshou_common.outbox.__main__ import main as relay_main

        asyncio.run(relay_main())
    else:
        raise SystemExit(f"unknown command {command!r}: serve | migrate | relay")


if __name__ == "__main__":
    main()
