"""The figures table the CLI prints (`ganshou figures`, `make run`): each rate beside the
counts it is taken from."""

from __future__ import annotations

import io

from rich.console import Console

from ganshou.metrics.v1 import metrics_service_pb2 as mapi
from ganshou_cli.main import figures_table


def _rows(f: mapi.Figures) -> dict[str, tuple[str, str]]:
    table = figures_table(f, "t")
    cells = [list(c.cells) for c in table.columns]
    return {label: (value, of) for label, value, of in zip(*cells, strict=True)}


def test_a_promise_rate_is_shown_of_the_promises_decided() -> None:
    # Three emergencies: two people on site in time, one still within its 15 minutes.
    f = mapi.Figures(emergencies=3, on_site_kept=2, on_site_late=0, on_site_within_15_min_rate=1.0,
                     response_promises_kept=5, response_promises_late=1, on_time_response_rate=5 / 6)
    rows = _rows(f)
    assert rows["On site within 15 min"] == ("100.0%", "2 / 2")
    assert rows["On-time response (1 h)"] == ("83.3%", "5 / 6")
    Console(file=io.StringIO()).print(figures_table(f, "t"))  # renders
