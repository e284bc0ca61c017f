"""Contract: the names a new generation's first pass uses before faust is imported
(names.py) are those faust derives for the worker's app and tables."""

from __future__ import annotations

from ganshou_metrics.adapters import names
from ganshou_metrics.adapters.faust_app import Projection


def test_the_pass_writes_to_the_changelogs_faust_recovers_from() -> None:
    for topics in (None, {"intake": "bench.intake.x", "casework": "bench.casework.x"}):
        projection = Projection("127.0.0.1:1", "names", 3, topics)
        assert projection.app.conf.id == names.app_id("names")
        assert names.changelogs("names", topics) == {topic: table.changelog_topic_name
                                                     for topic, table in projection.table_of.items()}
