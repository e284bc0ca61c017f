"""The partner-resource service's processes.

    python -m ganshou_partner_resource serve     gRPC server (GRPC_PORT), /metrics (METRICS_PORT)
    python -m ganshou_partner_resource worker    matching and intake reactions (consumer)
    python -m ganshou_partner_resource migrate   apply the database migrations (DATABASE_URL)
    python -m ganshou_partner_resource relay     outbox relay to ganshou.partner-resource.events.v1
"""

from __future__ import annotations

from pathlib import Path

from ganshou_common import service_main
from ganshou_common.config import env

SQL_DIR = Path(__file__).parent / "adapters" / "sql"


async def serve() -> None:
    from ganshou_partner_resource.app.bootstrap import build_app, build_server

    async def build():
        app = await build_app(env("DATABASE_URL"))
        return build_server(app), app.store.close

    await service_main.serve(build)


async def worker() -> None:
    from ganshou_partner_resource.app.bootstrap import build_app, build_consumer

    app = await build_app(env("DATABASE_URL"))
    consumer = build_consumer(app, env("KAFKA_BOOTSTRAP"))
    await service_main.work(lambda stop: [consumer.run()], app.store.close, consumer.stop)


def main(argv: list[str] | None = None) -> None:
    service_main.main("partner-resource", SQL_DIR, {"serve": serve, "worker": worker}, argv)


if __name__ == "__main__":
    main()
