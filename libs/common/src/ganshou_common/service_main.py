"""What every service's `python -m ganshou_<service> COMMAND` shares: logging configured
once, `migrate` and `relay` as the event-store plumbing, and the life of a gRPC server or
a worker. Each service names only what is its own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop

from ganshou_common import logs
from ganshou_common.config import env, env_int
from ganshou_common.metrics_http import serve_metrics
from ganshou_common.migrate import migrate


async def serve(build: Callable[[], Awaitable[tuple[object, Callable[[], Awaitable[None]]]]]) -> None:
    """Serve /metrics (METRICS_PORT) and the gRPC server `build` returns with its closer,
    until SIGTERM; then stop gracefully and close."""
    serve_metrics(env_int("METRICS_PORT", 9100))
    server, close = await build()
    try:
        await server.start()
        await server.serve_until_signal()
    finally:
        await close()


async def work(tasks: Callable[[asyncio.Event], list[Awaitable[None]]], close: Callable[[], Awaitable[None]],
               on_stop: Callable[[], None] = lambda: None) -> None:
    """Run a worker's tasks until SIGTERM/SIGINT sets the stop event (and calls on_stop)."""
    serve_metrics(env_int("METRICS_PORT", 9100))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: (stop.set(), on_stop()))
    try:
        await asyncio.gather(*tasks(stop))
    finally:
        await close()


def main(service: str, sql_dir: Path | None, commands: dict[str, Callable[[], Awaitable[None]]],
         argv: list[str] | None = None) -> None:
    """Dispatch `serve`, `worker`… (the service's own), `migrate` and `relay`."""
    command = (argv or sys.argv[1:] or [next(iter(commands))])[0]
    logs.configure(f"{service}-{command}", os.environ.get("LOG_LEVEL", "INFO"))
    # uvloop: the event loop in C. Every process shares the machine's cores with the rest
    # of the system, and the loop's own bookkeeping is a large part of each request.
    if command in commands:
        uvloop.run(commands[command]())
    elif command == "migrate" and sql_dir is not None:
        applied = asyncio.run(migrate(env("DATABASE_URL"), [sql_dir]))
        print(f"{service} migrations applied: {applied or 'none (up to date)'}")
    elif command == "relay" and sql_dir is not None:
        os.environ.setdefault("GANSHOU_SERVICE", service)
        from ganshou_common.outbox.__main__ import main as relay_main

        uvloop.run(relay_main())
    else:
        known = [*commands, *(["migrate", "relay"] if sql_dir else [])]
        raise SystemExit(f"unknown command {command!r}: {' | '.join(known)}")
