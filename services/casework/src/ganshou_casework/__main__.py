"""The casework service's processes.

    python -m ganshou_casework serve     gRPC server (GRPC_PORT), /metrics (METRICS_PORT)
    python -m ganshou_casework worker    demand → case and partner reactions, known partners, promise timers
    python -m ganshou_casework migrate   apply the database migrations (DATABASE_URL)
    python -m ganshou_casework relay     outbox relay to ganshou.casework.events.v1
"""

from __future__ import annotations

from pathlib import Path

from ganshou_common import service_main
from ganshou_common.config import env

SQL_DIR = Path(__file__).parent / "adapters" / "sql"


async def serve() -> None:
    from ganshou_casework.app.bootstrap import Settings, build_app, build_server

    async def build():
        app = await build_app(Settings.from_env())
        return build_server(app), app.store.close

    await service_main.serve(build)


async def worker() -> None:
    from ganshou_casework.app.bootstrap import Settings, build_app, build_consumer, build_partner_consumer, run_timers

    app = await build_app(Settings.from_env())
    consumer = build_consumer(app, env("KAFKA_BOOTSTRAP"))
    partners = build_partner_consumer(app, env("KAFKA_BOOTSTRAP"))

    def stop_consumers() -> None:
        consumer.stop()
        partners.stop()

    await service_main.work(lambda stop: [consumer.run(), partners.run(), run_timers(app, stop)], app.store.close,
                            stop_consumers)


def main(argv: list[str] | None = None) -> None:
    service_main.main("casework", SQL_DIR, {"serve": serve, "worker": worker}, argv)


if __name__ == "__main__":
    main()
