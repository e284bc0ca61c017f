"""The topics a test or bench run created, deleted after it (tools/test.sh, tools/bench.sh).

Tests and benchmarks make topics of their own (random names, some of a million events);
left on the local broker, they pile up run after run (18,786 partition folders, 11 GB, and
minutes of the broker's CPU at each start after two days of runs here). The scripts sweep
only when the run started the broker itself, so a broker `make run` was already using
keeps everything; the standard topics are always kept (created as the broker started, they
may be missing from a snapshot taken before its metadata showed them).

    uv run python tools/kafka_topics.py snapshot FILE   # the topics there are now
    uv run python tools/kafka_topics.py sweep FILE      # delete those not in FILE
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from ganshou_common.topics import standard_topics

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:29092")
AT_ONCE = 200  # topics a delete request names


async def _topics(admin: AIOKafkaAdminClient) -> set[str]:
    return {t for t in await admin.list_topics() if not t.startswith("__")}  # never the broker's own


async def main(command: str, path: Path) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=120_000)
    await admin.start()
    try:
        now = await _topics(admin)
        if command == "snapshot":
            path.write_text("\n".join(sorted(now)) + "\n")
            return
        created = sorted(now - set(path.read_text().split()) - set(standard_topics()))
        for i in range(0, len(created), AT_ONCE):
            await admin.delete_topics(created[i:i + AT_ONCE], timeout_ms=120_000)
        print(f"kafka: deleted {len(created)} topic{'' if len(created) == 1 else 's'} this run made")
    finally:
        await admin.close()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("snapshot", "sweep"):
        raise SystemExit(__doc__)
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
