"""The intake service's processes.

    python -m ganshou_intake serve     the gRPC server (GRPC_PORT) and its /metrics (METRICS_PORT)
    python -m ganshou_intake migrate   apply the database migrations (DATABASE_URL)
    python -m ganshou_intake relay     the outbox relay to ganshou.intake.events.v1
"""

from __future__ import annotations

from ganshou_common import service_main
from ganshou_intake.adapters.read_models import SQL_DIR


async def serve() -> None:
    from ganshou_intake.app.bootstrap import Settings, bootstrap

    await service_main.serve(lambda: bootstrap(Settings.from_env()))


def main(argv: list[str] | None = None) -> None:
    service_main.main("intake", SQL_DIR, {"serve": serve}, argv)


if __name__ == "__main__":
    main()
