"""The figures as Prometheus exposes them: label values as people read them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from ganshou_metrics.adapters.prometheus import FiguresCollector

from .test_projection import project, town


class WithBreakdowns:
    """The small town's figures, each breakdown keyed as the projection keys it (enum names)."""

    def __init__(self, figures) -> None:
        self.figures, self.events = figures, figures.events

    def communities(self):
        return self.figures.communities()

    def snapshot(self, community: str = "", segment: int = 0) -> dict:
        return {**self.figures.snapshot(community, segment), "demands_by_channel": {"hotline": 2},
                "cases_by_track": {"TRACK_SOLVE_NOW": 1},
                "agreements_by_category": {"AGREEMENT_CATEGORY_SERVICE_FOR_PEOPLE": 1}}


def test_breakdowns_are_labelled_without_their_enum_prefix() -> None:
    figures, _ = project(town())
    registry = CollectorRegistry()
    registry.register(FiguresCollector(lambda: WithBreakdowns(figures)))
    text = generate_latest(registry).decode()
    assert 'ganshou_aid_paid_by_kind_fen{community="",kind="elderly"} 20000.0' in text
    assert 'ganshou_cases_by_track{community="",track="solve_now"} 1.0' in text
    assert 'ganshou_agreements{category="service_for_people",community=""} 1.0' in text
    assert 'ganshou_demands_by_channel{channel="hotline",community=""} 2.0' in text
    assert 'ganshou_segment_issues_received{segment="local"}' in text
