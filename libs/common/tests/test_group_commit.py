"""Group commit on PostgreSQL: many commands, one transaction, each failing alone."""

from __future__ import annotations

import asyncio

import pytest

from ganshou_common.commands import fingerprint
from ganshou_common.errors import InvalidArgument, RequestIdReused
from ganshou_common.eventstore import ANY_VERSION, NO_STREAM, NewEvent, StreamAppend
from ganshou_common.group_commit import GroupCommitter
from ganshou_common.testing.fixtures import migrated_store

pytestmark = pytest.mark.integration


def appender(stream: str, expected: int = ANY_VERSION, fail: bool = False):
    async def decide(tx) -> bytes:
        stored = await tx.append(StreamAppend(stream, "thing", expected, [NewEvent("ganshou.test.v1.Happened", b"x")]))
        if fail:
            raise InvalidArgument.field("name", "required")
        return str(stored[-1].version).encode()

    return decide


async def test_concurrent_commands_commit_together_and_a_bad_one_fails_alone(pg_port: int) -> None:
    async with migrated_store(pg_port) as store:
        committer = GroupCommitter(store, workers=2)
        try:
            calls = [committer.execute(f"r{i}", fingerprint("Do", str(i).encode()), appender(f"s{i % 7}"), key=f"s{i % 7}")
                     for i in range(200)]
            calls.append(committer.execute("bad", "fp-bad", appender("s-bad", fail=True)))
            results = await asyncio.gather(*calls, return_exceptions=True)
            assert isinstance(results[-1], InvalidArgument)
            assert all(isinstance(r, bytes) for r in results[:-1]), [r for r in results if not isinstance(r, bytes)][:3]
            assert await store.read_stream("s-bad") == []
            for s in range(7):
                versions = [e.version for e in await store.read_stream(f"s{s}")]
                assert versions == list(range(1, len(versions) + 1))
            assert sum([len(await store.read_stream(f"s{s}")) for s in range(7)]) == 200
            assert await store.outbox_backlog() == 200

            # Retries answer from the record; a reused id with other content is refused.
            assert await committer.execute("r3", fingerprint("Do", b"3"), appender("s3")) == results[3]
            with pytest.raises(RequestIdReused):
                await committer.execute("r3", fingerprint("Do", b"other"), appender("s3"))
            # An explicit stale version conflicts (after retries) without touching the stream.
            with pytest.raises(Exception, match="expected version"):
                await committer.execute("stale", "fp", appender("s0", expected=NO_STREAM))
        finally:
            await committer.close()
