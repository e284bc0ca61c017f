"""Rows packed into record batches by aiokafka's record builder (row_batches.py, which
reaches into the producer's BatchBuilder): read back from the batches' bytes as a broker
would, every row once, in order, keyed as faust's json codec writes a key."""

import orjson
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.memory_records import MemoryRecords

from ganshou_metrics.adapters.row_batches import RowBatch, row_batches


def read_back(batch: BatchBuilder) -> list[tuple[int, bytes, bytes]]:
    records = MemoryRecords(bytes(batch._build()))  # what send_batch sends
    out = []
    while records.has_next():
        built = records.next_batch()
        assert built.validate_crc()
        out += [(r.offset, r.key, r.value) for r in built]
    return out


def test_rows_fill_batches_in_order_each_row_once():
    rows = {f"household-h{i}": orjson.dumps({"v": 1, "n": i}) for i in range(5_000)}
    batches = list(row_batches(list(rows), rows, 16 * 1024))
    assert len(batches) > 5 and all(isinstance(b, BatchBuilder) for b in batches)
    seen = []
    for batch in batches:
        records = read_back(batch)
        assert [offset for offset, _, _ in records] == list(range(batch.record_count()))  # relative offsets
        assert len({r.timestamp for r in MemoryRecords(bytes(batch._build())).next_batch()}) == 1
        seen += [(orjson.loads(k), v) for _, k, v in records]
    assert seen == list(rows.items())
    assert all(b.size() <= 16 * 1024 for b in batches)


def test_no_keys_no_batch_and_a_row_larger_than_a_batch_has_one_of_its_own():
    assert list(row_batches([], {}, 1024)) == []
    rows = {"a": b"a", "big": b"x" * 4096, "c": b"c"}
    assert [[orjson.loads(k) for _, k, _ in read_back(b)] for b in row_batches(rows, rows, 1024)] == [
        ["a"], ["big"], ["c"]]


def test_a_full_batch_says_which_key_did_not_fit_and_takes_no_more():
    rows = {f"k{i}": b"v" * 100 for i in range(100)}
    batch = RowBatch(1024, 0)
    left = batch.fill(iter(rows), rows)
    assert left is not None and batch.closed()
    assert [orjson.loads(k) for _, k, _ in read_back(batch)] == list(rows)[:batch.record_count()]
    assert list(rows)[batch.record_count()] == left
