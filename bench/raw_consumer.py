"""The rebuild's comparison: a raw aiokafka consumer reading the topics from the start and
decoding each record's envelope, nothing else, in a process of its own (as a rebuild is a
process of its own, timed from its spawn).

    python bench/raw_consumer.py BOOTSTRAP EXPECTED TOPIC...

Prints one JSON line: CLOCK_MONOTONIC (one clock for every process on Linux, so the
spawning bench can time it from the spawn) when its consumer had started and when it
decoded the last expected record.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid

from aiokafka import AIOKafkaConsumer

from ganshou.common.v1 import envelope_pb2


def now() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)


async def main(bootstrap: str, expected: int, topics: list[str]) -> dict:
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=f"raw-{uuid.uuid4().hex[:6]}",
                                auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=2000)
    await consumer.start()
    n, started = 0, now()
    try:
        while n < expected:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    envelope_pb2.EventEnvelope.FromString(r.value)
                    n += 1
        return {"events": n, "started_at": started, "done_at": now()}
    finally:
        await consumer.stop()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3:]))), flush=True)
