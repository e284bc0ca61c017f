"""What an outage of the database or the network looks like: not the caller's fault and
not a bug. Servers answer UNAVAILABLE (safe to retry with the same request id); consumers
wait and apply the same message again."""

from __future__ import annotations

import asyncpg

OUTAGES: tuple[type[Exception], ...] = (
    OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError, asyncpg.AdminShutdownError, asyncpg.CrashShutdownError,
    # A connection the server dropped mid-commit can leave asyncpg's protocol in a state it
    # reports this way; the outcome is unknown, so the caller retries (same request id).
    asyncpg.InternalClientError,
)
