"""Run the outbox relay of one service as its own process.

    python -m ganshou_common.outbox
Environment: DATABASE_URL, KAFKA_BOOTSTRAP, GANSHOU_SERVICE (e.g. intake),
OUTBOX_TOPIC (default ganshou.<service>.events.v1), METRICS_PORT (default 9100),
OUTBOX_BATCH_SIZE (default 5000), OUTBOX_POLL_MS (how long an idle relay waits before it
looks again, default 100).
"""

from __future__ import annotations

import asyncio
import signal

from ganshou_common import logs
from ganshou_common.config import env, env_int
from ganshou_common.metrics_http import serve_metrics
from ganshou_common.outbox.relay import OutboxRelay
from ganshou_common.topics import events_topic


async def main() -> None:
    service = env("GANSHOU_SERVICE")
    logs.configure(f"{service}-relay")
    relay = OutboxRelay(
        dsn=env("DATABASE_URL"),
        bootstrap=env("KAFKA_BOOTSTRAP"),
        topic=env("OUTBOX_TOPIC", events_topic(service)),
        source=service,
        batch_size=env_int("OUTBOX_BATCH_SIZE", 5000),
        poll_s=env_int("OUTBOX_POLL_MS", 100) / 1000,
    )
    serve_metrics(env_int("METRICS_PORT", 9100))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, relay.stop)
    await relay.run()


if __name__ == "__main__":
    asyncio.run(main())
