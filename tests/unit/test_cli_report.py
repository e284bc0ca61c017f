"""The leaders' report's charts: a bar per community (35 in the town) keeps each value
legible — no label runs into its neighbour's, the chart's title or out of its axes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from ganshou.metrics.v1 import metrics_service_pb2 as mapi
from ganshou_cli.report import SEGMENT_ZH, ReportData, pages


def _town(n: int) -> ReportData:
    communities = {f"zj-{i:02}": mapi.Figures(visit_coverage=(1.0, 2 / 3, 1 / 3)[i % 3],
                                              resolved_or_explained_rate=(0.889, 1.0, 0.7)[i % 3],
                                              issues_received=9 + i % 4)
                   for i in range(1, n + 1)}
    town = mapi.Figures(visit_coverage=0.9, response_promises_kept=165, response_promises_late=11,
                        on_site_kept=31, on_site_late=5, aid_paid_fen_by_kind={"AID_KIND_ELDERLY": 120_000})
    return ReportData("2026年11月", datetime(2026, 11, 30, tzinfo=UTC), town, communities,
                      {s: mapi.Figures(satisfaction_mean=4.2) for s in SEGMENT_ZH})


def test_value_labels_stay_apart_and_below_the_title() -> None:
    for fig in pages(_town(35)):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            labels = [t.get_window_extent(renderer) for t in ax.texts]
            if not labels:
                continue
            title, frame = ax.title.get_window_extent(renderer), ax.get_window_extent(renderer)
            for a, b in itertools.combinations(labels, 2):
                assert not a.overlaps(b), f"{ax.get_title()}: two value labels overlap"
            for box in labels:
                assert not box.overlaps(title), f"{ax.get_title()}: a value label runs into the title"
                assert box.y1 <= frame.y1 + 0.5, f"{ax.get_title()}: a value label leaves its axes"
