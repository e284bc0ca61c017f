"""Versioned SQL migrations: files named NNNN_description.sql, applied once each, in order.

The event store's own (ganshou_common/sql) come first; a service adds its read models'
files from its own folder. Runs under an advisory lock so two migrators (two pods of a
Helm hook, say) never race.

    python -m ganshou_common.migrate --dsn DSN [--dir DIR ...]
"""

from __future__ import annotations

import argparse
import asyncio
from importlib import resources
from pathlib import Path

import asyncpg

_LOCK = 7_201_600  # any constant: the advisory lock that serialises migrators
CORE_DIR = Path(str(resources.files("ganshou_common") / "sql"))


def pending_files(dirs: list[Path]) -> list[Path]:
    files = sorted((f for d in dirs for f in d.glob("*.sql")), key=lambda f: f.name)
    names = [f.name for f in files]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValueError(f"migration names must be unique across folders: {sorted(dupes)}")
    return files


async def migrate(dsn: str, extra_dirs: list[Path] | None = None) -> list[str]:
    """Apply every migration not applied yet; returns the names applied now."""
    files = pending_files([CORE_DIR, *(extra_dirs or [])])
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        applied = []
        for f in files:
            if f.name in done:
                continue
            async with conn.transaction():
                await conn.execute(f.read_text())
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", f.name)
            applied.append(f.name)
        return applied
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Apply Ganshou's SQL migrations.")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--dir", action="append", type=Path, default=[])
    args = parser.parse_args()
    applied = asyncio.run(migrate(args.dsn, args.dir))
    print(f"migrations applied: {applied or 'none (up to date)'}")


if __name__ == "__main__":
    main()
