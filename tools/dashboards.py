"""Writes the Grafana dashboards (deploy/grafana/dashboards/*.json) from one table of
panels, so every panel follows the same shape and its query is in one place.

    uv run python tools/dashboards.py      (a test fails when the JSON is not current)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "dashboards"
C = 'community="$community"'
DS = {"type": "prometheus", "uid": "${datasource}"}

# dashboard → (title, [(panel title, type, unit, [exprs])])
DASHBOARDS = {
    "town-overview": ("Ganshou — town overview (感受式服务)", [
        ("Visit coverage 走访覆盖率", "stat", "percentunit", [f"ganshou_visit_coverage_ratio{{{C}}}"]),
        ("Households visited / due", "stat", "none",
         [f"ganshou_visit_households_visited{{{C}}}", f"ganshou_visit_households_due{{{C}}}"]),
        ("Issues received 受理问题", "stat", "none", [f"ganshou_issues_received{{{C}}}"]),
        ("Response rate 响应率", "stat", "percentunit", [f"ganshou_response_ratio{{{C}}}"]),
        ("Resolved or explained 解决或解释率", "stat", "percentunit", [f"ganshou_resolved_or_explained_ratio{{{C}}}"]),
        ("Satisfaction 满意度 (1–5)", "stat", "none", [f"ganshou_satisfaction_mean_score{{{C}}}"]),
        ("Satisfied share", "stat", "percentunit", [f"ganshou_satisfied_ratio{{{C}}}"]),
        ("Reopen rate", "stat", "percentunit", [f"ganshou_reopen_ratio{{{C}}}"]),
        ("Demands by channel", "bargauge", "none", [f"ganshou_demands_by_channel{{{C}}}"]),
        ("Cases by track", "bargauge", "none", [f"ganshou_cases_by_track{{{C}}}"]),
        ("Satisfaction by segment (town)", "bargauge", "none", ["ganshou_segment_satisfaction_mean_score"]),
        ("Satisfied share, by segment (town)", "bargauge", "percentunit", ["ganshou_segment_satisfied_ratio"]),
        ("Issues received, by segment (town)", "bargauge", "none", ["ganshou_segment_issues_received"]),
        ("Resolved or explained, by segment (town)", "bargauge", "percentunit",
         ["ganshou_segment_resolved_or_explained_ratio"]),
        ("Resolved or explained, by community", "bargauge", "percentunit",
         ['ganshou_resolved_or_explained_ratio{community!=""}']),
        ("Visit coverage, by community", "bargauge", "percentunit", ['ganshou_visit_coverage_ratio{community!=""}']),
        ("Deliberation turnout / approval", "stat", "percentunit",
         [f"ganshou_deliberation_turnout_ratio{{{C}}}", f"ganshou_deliberation_approval_ratio{{{C}}}"]),
    ]),
    "promises": ("Ganshou — promises kept and broken (1 hour, 15 minutes)", [
        ("On-time response (1 h)", "stat", "percentunit", [f"ganshou_on_time_response_ratio{{{C}}}"]),
        ("On site within 15 min", "stat", "percentunit", [f"ganshou_on_site_in_time_ratio{{{C}}}"]),
        ("Open and overdue now", "stat", "none", [f"ganshou_promises_open_overdue{{{C}}}"]),
        ("Response promises kept / late", "timeseries", "none",
         [f"ganshou_response_promises_kept{{{C}}}", f"ganshou_response_promises_late{{{C}}}"]),
        ("On-site promises kept / late", "timeseries", "none",
         [f"ganshou_on_site_promises_kept{{{C}}}", f"ganshou_on_site_promises_late{{{C}}}"]),
        ("Late responses, by community", "bargauge", "none", ['ganshou_response_promises_late{community!=""}']),
        ("Hotline calls / emergencies", "stat", "none",
         [f"ganshou_hotline_calls{{{C}}}", f"ganshou_hotline_emergency_calls{{{C}}}"]),
    ]),
    "partners-aid": ("Ganshou — partners and aid (区域化党建)", [
        ("Pairing signing rate", "stat", "percentunit", ['ganshou_pairing_signing_ratio{community=""}']),
        ("Member units / paired", "stat", "none",
         ['ganshou_member_units{community=""}', 'ganshou_member_units_paired{community=""}']),
        ("Agreements by category", "bargauge", "none", [f"ganshou_agreements{{{C}}}"]),
        ("Service person-times", "stat", "none", [f"ganshou_service_person_times{{{C}}}"]),
        ("Aid paid (yuan)", "stat", "currencyCNY", [f"ganshou_aid_paid_fen{{{C}}} / 100"]),
        ("Aid paid by kind (yuan)", "bargauge", "currencyCNY", [f"ganshou_aid_paid_by_kind_fen{{{C}}} / 100"]),
        ("Aid paid by segment (yuan, town)", "bargauge", "currencyCNY", ["ganshou_segment_aid_paid_fen / 100"]),
        ("Service person-times, by segment (town)", "bargauge", "none", ["ganshou_segment_service_person_times"]),
        ("Aid beneficiaries: person-times / distinct", "stat", "none",
         [f"ganshou_aid_beneficiary_person_times{{{C}}}", f"ganshou_aid_beneficiaries_distinct{{{C}}}"]),
        ("Partner matches", "stat", "none", [f"ganshou_partner_matches{{{C}}}"]),
        ("Organisations standardised (六个一) / taking part", "stat", "none",
         [f"ganshou_organisations_standardised{{{C}}}", f"ganshou_organisations{{{C}}}"]),
        ("Demonstration units: applied / designated", "stat", "none",
         [f"ganshou_demonstration_applications{{{C}}}", f"ganshou_demonstration_units{{{C}}}"]),
        ("Party-member commitments made / fulfilled", "stat", "none",
         [f"ganshou_commitments_made{{{C}}}", f"ganshou_commitments_fulfilled{{{C}}}"]),
        ("Partner members registered, by community", "bargauge", "none",
         ['ganshou_partner_members_registered{community!=""}']),
        ("Volunteers / activities", "stat", "none", [f"ganshou_volunteers{{{C}}}", f"ganshou_volunteer_activities{{{C}}}"]),
        ("Volunteer service time", "stat", "s", [f"ganshou_volunteer_service_seconds{{{C}}}"]),
        ("Served after hours: evenings / weekends", "stat", "none",
         [f"ganshou_extended_window_evening_person_times{{{C}}}", f"ganshou_extended_window_weekend_person_times{{{C}}}"]),
    ]),
    "service-health": ("Ganshou — service health", [
        ("Requests per second, by service", "timeseries", "reqps",
         ["sum by (grpc_service) (rate(grpc_server_handled_total[1m]))"]),
        ("Errors per second, by code", "timeseries", "reqps",
         ['sum by (grpc_code) (rate(grpc_server_handled_total{grpc_code!="OK"}[1m]))']),
        ("p99 handling time", "timeseries", "s",
         ["histogram_quantile(0.99, sum by (le, grpc_service) (rate(grpc_server_handling_seconds_bucket[1m])))"]),
        ("Outbox backlog", "timeseries", "none", ["max by (source) (ganshou_outbox_backlog_events)"]),
        ("Events published per second", "timeseries", "none",
         ["sum by (source) (rate(ganshou_outbox_published_events_total[1m]))"]),
        ("Consumer lag", "timeseries", "none", ["sum by (consumer) (ganshou_consumer_lag_events)"]),
        ("Dead letters", "stat", "none", ["sum(ganshou_consumer_dead_letters_total) or vector(0)"]),
        ("Events projected", "stat", "none", ["ganshou_metrics_events_projected"]),
        ("Targets up", "stat", "none", ['sum(up{job="ganshou"})']),
    ]),
}


# The label each breakdown metric's bars are named by (ganshou_segment_* are by segment).
BREAKDOWN = {"ganshou_demands_by_channel": "channel", "ganshou_cases_by_track": "track",
             "ganshou_agreements": "category", "ganshou_aid_paid_by_kind_fen": "kind"}


def legend(title: str, expr: str, i: int, n: int) -> str:
    """A bar or value named by what it stands for, not by its whole label set."""
    if 'community!=""' in expr:
        return "{{community}}"
    if m := re.search(r"\b(?:sum|max) by \((?:le, )?(\w+)\)", expr):  # a quantile's buckets: by what follows le
        return "{{%s}}" % m.group(1)
    metric = m.group(0) if (m := re.match(r"\w+", expr)) else ""  # "(a / b)" names no one metric
    if label := "segment" if metric.startswith("ganshou_segment_") else BREAKDOWN.get(metric):
        return "{{%s}}" % label
    if n > 1:  # "Households visited / due": each value named by its part of the title
        parts = [x.strip() for x in title.split(":")[-1].split("/")]
        return parts[i] if len(parts) == n else ""
    return ""


def panel(n: int, title: str, kind: str, unit: str, exprs: list[str]) -> dict:
    return {
        "id": n + 1, "type": kind, "title": title, "datasource": DS,
        "gridPos": {"h": 6 if kind == "stat" else 8, "w": 6 if kind == "stat" else 12,
                    "x": (n * 6) % 24 if kind == "stat" else (n % 2) * 12, "y": n * 8},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": chr(65 + i), "expr": e, "datasource": DS, "legendFormat": legend(title, e, i, len(exprs))}
                    for i, e in enumerate(exprs)],
        "options": {"reduceOptions": {"calcs": ["lastNotNull"]}},
    }


def dashboard(uid: str, title: str, panels: list) -> dict:
    community_var = {
        "name": "community", "label": "community (empty: the whole town)", "type": "query", "datasource": DS,
        "query": "label_values(ganshou_households, community)", "includeAll": False,
        "current": {"text": "", "value": ""}, "refresh": 2,
    }
    return {
        "uid": f"ganshou-{uid}", "title": title, "tags": ["ganshou"], "timezone": "browser", "schemaVersion": 39,
        "refresh": "10s", "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus"}, community_var]},
        "panels": [panel(n, *p) for n, p in enumerate(panels)],
    }


def render() -> dict[str, str]:
    return {f"{uid}.json": json.dumps(dashboard(uid, title, panels), indent=2, ensure_ascii=False) + "\n"
            for uid, (title, panels) in DASHBOARDS.items()}


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
    print(f"wrote {len(DASHBOARDS)} dashboards to {OUT}", file=sys.stderr)
