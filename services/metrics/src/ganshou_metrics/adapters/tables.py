"""The worker's faust tables as the first pass (catch_up.py) and a restart's reading back
(reload.py) see them: each source topic's changelog, how a row's changelog message is
serialised, and how rows are handed to a table's store."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from aiokafka import TopicPartition

from ganshou_metrics.adapters.preloaded_store import preload
from ganshou_metrics.adapters.row_codec import encode_key


class Tables:
    """Per source topic: its table's changelog topic and how a row's key and value are
    serialised there (faust's own codecs, so faust's recovery reads them back)."""

    def __init__(self, tables: Mapping[str, object]):
        self._tables = dict(tables)  # source topic → faust.Table

    def topics(self) -> list[str]:
        return list(self._tables)

    def changelog(self, topic: str) -> str:
        return self._tables[topic].changelog_topic_name

    def preload(self, topic: str, parts: Iterable[tuple[int, dict[str, bytes]]],
                last_offsets: dict[TopicPartition, int]) -> int:
        """Hand the rows, given by changelog partition, to the table's store
        (preloaded_store.py). How many rows it holds."""
        rows: dict[str, bytes] = {}
        keys: dict[int, list[str]] = {}
        for p, part in parts:  # each key in one partition
            if not rows:  # taken as it is: a copy of half a million rows took ~0.7 s here
                rows = part
            else:
                rows.update(part)
            keys.setdefault(p, []).extend(part)
        return self.preload_rows(topic, rows, keys, last_offsets)

    def preload_rows(self, topic: str, rows: dict[str, bytes], keys: Mapping[int, list[str]],
                     last_offsets: dict[TopicPartition, int]) -> int:
        """Hand the rows, and the keys of each changelog partition, to the table's store. How
        many rows it holds."""
        preload(self._tables[topic], rows, keys, last_offsets)
        return len(rows)

    def plain(self, topic: str) -> bool:
        """Keys in faust's json codec, rows as their bytes: how the worker declares its tables."""
        table = self._tables[topic]
        return table.key_serializer == "json" and table.value_serializer == "raw"

    def serialise(self, topic: str, key: str, row: bytes) -> tuple[bytes, bytes]:
        """The changelog message's key and value, as faust writes them."""
        table = self._tables[topic]
        if self.plain(topic):
            # faust's json codec's form, without its per-call machinery (13 µs a row
            # through prepare_key); the row is its bytes already.
            return encode_key(key), row
        k, _ = table.changelog_topic.prepare_key(key, table.key_serializer)
        v, _ = table.changelog_topic.prepare_value(row, table.value_serializer)
        return k, v
