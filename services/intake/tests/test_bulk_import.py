"""The import's pipeline of chunks, against an in-memory importer (the chunks' own
transactions are covered against PostgreSQL in test_intake_service.py)."""

from __future__ import annotations

import asyncio

import pytest

from ganshou.intake.v1 import intake_service_pb2 as api
from ganshou_common.errors import InvalidArgument
from ganshou_common.grpc_scaffold.auth import Principal, Role
from ganshou_intake.app.bulk_import import import_households

WHO = Principal("admin-1", Role.TOWN_ADMIN)


class Importer:
    """Answers each chunk with its rows' numbers as ids, the earlier chunks slowest, so
    they finish out of order; fails the chunk holding `fail_at`."""

    def __init__(self, fail_at: int | None = None):
        self.fail_at, self.running, self.most_running = fail_at, 0, 0
        self.started: list[int] = []
        self.finished: list[int] = []
        self.cancelled: list[int] = []

    async def import_chunk(self, who, cid, request_id, rows):
        first = rows[0][0]
        self.started.append(first)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(0.05 / first)
            if self.fail_at is not None and any(n == self.fail_at for n, _ in rows):
                raise RuntimeError(f"chunk {first} failed")
            self.finished.append(first)
            return api.ImportHouseholdsResponse(households_imported=len(rows), household_ids=[str(n) for n, _ in rows])
        except asyncio.CancelledError:
            self.cancelled.append(first)
            raise
        finally:
            self.running -= 1


async def rows(n: int, request_id: str = "imp-1"):
    for i in range(1, n + 1):
        yield api.ImportHouseholdsRequest(request_id=request_id, row_number=i,
                                          household=api.RegisterHouseholdRequest(community_id="c1"))


async def test_chunks_run_a_few_at_once_and_answer_in_the_stream_order() -> None:
    importer = Importer()
    result = await import_households(importer, WHO, "cid", rows(23), chunk_size=2, in_flight=3)
    assert result.households_imported == 23
    assert list(result.household_ids) == [str(n) for n in range(1, 24)]
    assert importer.most_running == 3
    assert importer.finished != sorted(importer.finished)  # they did finish out of order


async def test_a_failing_chunk_ends_the_import_and_nothing_is_left_running() -> None:
    importer = Importer(fail_at=5)
    with pytest.raises(RuntimeError, match="chunk 5"):
        await import_households(importer, WHO, "cid", rows(40), chunk_size=2, in_flight=4)
    assert importer.running == 0
    assert set(importer.started) == set(importer.finished) | set(importer.cancelled) | {5}


async def test_every_message_carries_the_same_request_id() -> None:
    async def mixed():
        async for r in rows(3):
            yield r
        async for r in rows(1, request_id="imp-2"):
            yield r

    importer = Importer()
    with pytest.raises(InvalidArgument) as err:
        await import_households(importer, WHO, "cid", mixed(), chunk_size=2)
    assert [v.field for v in err.value.violations] == ["request_id"]
    assert importer.running == 0


async def test_rows_in_bulk_are_the_rows_one_a_message() -> None:
    async def in_bulk(n: int, per_message: int):
        households = [r async for r in rows(n)]
        yield households[0]  # a row of its own first, then rows in bulk
        for i in range(1, n, per_message):
            yield api.ImportHouseholdsRequest(request_id="imp-1", rows=[
                api.ImportRow(row_number=r.row_number, household=r.household) for r in households[i:i + per_message]])

    one, bulk = Importer(), Importer()
    expected = await import_households(one, WHO, "cid", rows(23), chunk_size=4)
    got = await import_households(bulk, WHO, "cid", in_bulk(23, 5), chunk_size=4)
    assert got == expected and list(got.household_ids) == [str(n) for n in range(1, 24)]
    assert sorted(bulk.started) == sorted(one.started)  # the same chunks


async def test_a_message_without_rows_is_a_row_to_report() -> None:
    async def empty():
        yield api.ImportHouseholdsRequest(request_id="imp-1", row_number=1)

    importer = Importer()
    assert (await import_households(importer, WHO, "cid", empty())).households_imported == 1
    assert importer.started == [1]  # handed on as a row (the service rejects its empty household)


async def test_a_row_number_sent_twice_or_below_one_is_rejected_and_unnumbered_rows_follow_on() -> None:
    """A row's ids derive from the import's request id and its number: a number used twice
    would make two rows one (or fail their chunk), so the second is rejected."""
    def row(number: int = 0) -> api.ImportRow:
        return api.ImportRow(row_number=number, household=api.RegisterHouseholdRequest(community_id="c1"))

    async def messages():
        yield api.ImportHouseholdsRequest(request_id="imp-1", row_number=1,
                                          household=api.RegisterHouseholdRequest(community_id="c1"),
                                          rows=[row(1), row(2), row(-3)])
        yield api.ImportHouseholdsRequest(request_id="imp-1", rows=[row(), row(2), row()])

    importer = Importer()
    result = await import_households(importer, WHO, "cid", messages(), chunk_size=2)
    assert list(result.household_ids) == ["1", "2", "3", "4"]  # the unnumbered rows: 3 and 4
    assert sorted((r.row_number, r.field, r.reason) for r in result.rejected) == [
        (-3, "row_number", "must be 1 or more"), (1, "row_number", "repeated: each row of an import needs its own"),
        (2, "row_number", "repeated: each row of an import needs its own")]
