"""The figures as Prometheus metrics, computed at scrape time from the live projection.

Names follow Prometheus conventions: `ganshou_` prefix, `_ratio` for fractions, counts of
things as gauges (they can go down: a reversed disbursement, an ended pairing), money in
fen. Labels: community ("" is the whole town), segment, channel, track, category, kind — each
value its enum name without the enum's prefix, lower case (segment="local", track="solve_now").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ganshou.common.v1 import types_pb2

# figure key → (metric name, help)
TOWN_AND_COMMUNITY = {
    "communities": ("ganshou_communities", "Communities (villages and residential committees)"),
    "households": ("ganshou_households", "Registered households"),
    "residents": ("ganshou_residents", "Registered residents"),
    "residents_erased": ("ganshou_residents_erased", "Residents whose personal data was erased"),
    "households_due": ("ganshou_visit_households_due", "Households due a visit in visit campaigns"),
    "households_visited": ("ganshou_visit_households_visited", "Distinct households met in visit campaigns"),
    "visit_coverage": ("ganshou_visit_coverage_ratio", "Households visited / households due"),
    "visits": ("ganshou_visits", "Household visits recorded (revisits included)"),
    "hotline_calls": ("ganshou_hotline_calls", "Hotline calls logged"),
    "emergency_calls": ("ganshou_hotline_emergency_calls", "Emergency hotline calls"),
    "demands": ("ganshou_demands", "Demands raised, every channel"),
    "issues_received": ("ganshou_issues_received", "Demands that became cases (linked repeats excluded)"),
    "contacts": ("ganshou_case_contacts", "Residents' reports on cases, repeats included"),
    "responded": ("ganshou_cases_responded", "Cases with a first response"),
    "response_rate": ("ganshou_response_ratio", "Cases responded / cases received"),
    "response_promises_kept": ("ganshou_response_promises_kept", "1-hour response promises kept"),
    "response_promises_late": ("ganshou_response_promises_late", "Response promises broken or open past due"),
    "on_time_response_rate": ("ganshou_on_time_response_ratio", "Responses within their promise / due"),
    "emergencies": ("ganshou_emergencies", "Emergency cases"),
    "on_site_kept": ("ganshou_on_site_promises_kept", "Someone on site within 15 minutes"),
    "on_site_late": ("ganshou_on_site_promises_late", "On-site promises broken or open past due"),
    "on_site_within_15_min_rate": ("ganshou_on_site_in_time_ratio", "Emergencies with someone on site within the promise (15 min)"),
    "resolved": ("ganshou_cases_resolved", "Cases closed as resolved"),
    "explained": ("ganshou_cases_explained", "Cases closed as explained"),
    "resolved_or_explained_rate": ("ganshou_resolved_or_explained_ratio", "Resolved or explained / received"),
    "open_overdue": ("ganshou_promises_open_overdue", "Promises past due with nothing recorded yet"),
    "ratings": ("ganshou_satisfaction_ratings", "Felt-experience ratings given"),
    "satisfaction_mean": ("ganshou_satisfaction_mean_score", "Mean felt rating (1 to 5)"),
    "satisfied_share": ("ganshou_satisfied_ratio", "Ratings of 4 or 5 / ratings"),
    "reopened": ("ganshou_cases_reopened", "Cases reopened after a rating or follow-up"),
    "reopen_rate": ("ganshou_reopen_ratio", "Cases reopened / cases rated"),
    "member_units": ("ganshou_member_units", "Member units of the regional joint conference"),
    "units_with_pairing": ("ganshou_member_units_paired", "Member units with a signed pairing"),
    "pairing_signing_rate": ("ganshou_pairing_signing_ratio", "Member units paired / member units"),
    "active_pairings": ("ganshou_pairings_active", "Pairings signed and not ended"),
    "service_person_times": ("ganshou_service_person_times", "Partner service deliveries, person-times"),
    "aid_paid_fen": ("ganshou_aid_paid_fen", "Aid paid, in fen (1 yuan = 100 fen)"),
    "aid_person_times": ("ganshou_aid_beneficiary_person_times", "Aid disbursements, person-times"),
    "aid_distinct_persons": ("ganshou_aid_beneficiaries_distinct", "Distinct persons aided, all five kinds"),
    "deliberations": ("ganshou_deliberations", "Deliberations and hearings opened"),
    "deliberation_turnout": ("ganshou_deliberation_turnout_ratio", "Households voted / households eligible"),
    "deliberation_approval": ("ganshou_deliberation_approval_ratio", "Votes for / votes"),
    "appraisal_mean": ("ganshou_appraisal_mean_score", "Mean democratic appraisal score (0 to 100)"),
    "responsibility_posts": ("ganshou_responsibility_posts", "Party-member responsibility posts"),
    "partner_matches": ("ganshou_partner_matches", "Help requests matched to partner offerings"),
    "organisations": ("ganshou_organisations", "Grassroots organisations taking part in standardisation"),
    "standard_items_completed": ("ganshou_organisation_standard_items", "'Six ones' items completed"),
    "organisations_all_six": ("ganshou_organisations_standardised", "Organisations with all six items"),
    "demonstration_applications": ("ganshou_demonstration_applications", "Applications to be demonstration units"),
    "demonstration_designations": ("ganshou_demonstration_units", "Organisations designated demonstration units"),
    "commitments_made": ("ganshou_commitments_made", "Party-member service commitments made"),
    "commitments_fulfilled": ("ganshou_commitments_fulfilled", "Party-member service commitments fulfilled"),
    "partner_members_registered": ("ganshou_partner_members_registered", "Partner units' members registered"),
    "volunteers": ("ganshou_volunteers", "Registered volunteers"),
    "volunteer_activities": ("ganshou_volunteer_activities", "Volunteer activities recorded"),
    "after_hours_evening_person_times": ("ganshou_extended_window_evening_person_times", "Served in evening windows"),
    "after_hours_weekend_person_times": ("ganshou_extended_window_weekend_person_times", "Served in weekend windows"),
}
# Figures kept in one unit and exposed in the base unit.
SECONDS = {"volunteer_minutes": ("ganshou_volunteer_service_seconds", "Volunteer service time", 60)}
BY_SEGMENT = ("demands", "issues_received", "resolved_or_explained_rate", "satisfaction_mean", "satisfied_share",
              "aid_paid_fen", "service_person_times")
# figure key → (metric name, help, label, the enum prefix its values drop: track="solve_now"
# as segment="local", not the enum's full name)
BREAKDOWNS = {
    "demands_by_channel": ("ganshou_demands_by_channel", "Demands raised, by channel", "channel", "CHANNEL_"),
    "cases_by_track": ("ganshou_cases_by_track", "Cases by triage track", "track", "TRACK_"),
    "agreements_by_category": ("ganshou_agreements", "Pairing agreements, by category", "category",
                               "AGREEMENT_CATEGORY_"),
    "aid_paid_fen_by_kind": ("ganshou_aid_paid_by_kind_fen", "Aid paid in fen, by kind", "kind", "AID_KIND_"),
}


class FiguresCollector(Collector):
    def __init__(self, figures: Callable[[], object]):
        self._figures = figures

    def collect(self) -> Iterator[GaugeMetricFamily]:
        f = self._figures()
        communities = f.communities()
        snaps = {c: f.snapshot(c) for c in ["", *communities]}
        for key, (name, doc) in TOWN_AND_COMMUNITY.items():
            g = GaugeMetricFamily(name, doc, labels=["community"])
            for c, snap in snaps.items():
                g.add_metric([c], float(snap[key]))
            yield g
        segments = {s: f.snapshot("", s) for s in types_pb2.Segment.values() if s}
        for key in BY_SEGMENT:
            name, doc = TOWN_AND_COMMUNITY[key]
            g = GaugeMetricFamily(f"{name.replace('ganshou_', 'ganshou_segment_', 1)}", f"{doc}, by segment",
                                  labels=["segment"])
            for s, snap in segments.items():
                g.add_metric([types_pb2.Segment.Name(s).removeprefix("SEGMENT_").lower()], float(snap[key]))
            yield g
        for key, (name, doc, label, prefix) in BREAKDOWNS.items():
            g = GaugeMetricFamily(name, doc, labels=["community", label])
            for c, snap in snaps.items():
                for value_label, v in snap[key].items():
                    g.add_metric([c, value_label.removeprefix(prefix).lower()], float(v))
            yield g
        for key, (name, doc, factor) in SECONDS.items():
            g = GaugeMetricFamily(name, doc, labels=["community"])
            for c, snap in snaps.items():
                g.add_metric([c], float(snap[key] * factor))
            yield g
        g = GaugeMetricFamily("ganshou_metrics_events_projected", "Events in the live projection")
        g.add_metric([], float(f.events))
        yield g
