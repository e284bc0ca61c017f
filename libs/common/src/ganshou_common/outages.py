"""What an outage of the database or the network looks like: not the caller's fault and
not a bug. Servers answer UNAVAILABLE (safe to retry with the same request id); consumers
wait and apply the same message again."""

from __future__ import annotations

import asyncpg

OUTAGES: tuple[type[Exception], ...] = (
    OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError, asyncpg.AdminShutdownError, asyncpg.CrashShutdownError,
)
