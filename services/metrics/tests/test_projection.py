"""The projection as stories: events in, figures out. No infrastructure."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from ganshou.casework.v1 import events_pb2 as cw
from ganshou.common.v1 import envelope_pb2, types_pb2 as t
from ganshou.intake.v1 import events_pb2 as it
from ganshou.partner_resource.v1 import events_pb2 as pr
from ganshou_metrics.adapters.row_codec import counted_rows, decode_row, encode_row
from ganshou_metrics.domain.projection import Figures, apply

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class Streams:
    """Makes envelopes the way the services do: per-stream versions from 1."""

    def __init__(self) -> None:
        self.versions: dict[str, int] = {}

    def __call__(self, stream: str, msg, community: str = "c1") -> envelope_pb2.EventEnvelope:
        v = self.versions[stream] = self.versions.get(stream, 0) + 1
        env = envelope_pb2.EventEnvelope(event_id=str(uuid.uuid4()), stream_id=stream, stream_version=v,
                                         stream_type=stream.split("-")[0], event_type=msg.DESCRIPTOR.full_name,
                                         community_id=community)
        env.payload.Pack(msg)
        return env


def project(envelopes) -> tuple[Figures, dict]:
    figures, rows = Figures(), {}
    for env in envelopes:
        old = rows.get(env.stream_id)
        new = apply(old, env)
        if new is not None:
            rows[env.stream_id] = new
            figures.replace(old, new)
    return figures, rows


def ts(dt: datetime):
    from google.protobuf.timestamp_pb2 import Timestamp

    out = Timestamp()
    out.FromDatetime(dt)
    return out


def town() -> list[envelope_pb2.EventEnvelope]:
    e = Streams()
    out = [e("community-c1", it.CommunityRegistered(community_id="c1")),
           e("campaign-k1", it.VisitCampaignOpened(campaign_id="k1", community_id="c1", households_due=4))]
    for h in range(4):
        out.append(e(f"household-h{h}", it.HouseholdRegistered(household_id=f"h{h}", community_id="c1",
                                                                 segments=[t.SEGMENT_LOCAL])))
    for h, outcome in [(0, 1), (0, 1), (1, 1), (2, 2)]:  # h0 visited twice: counted once
        out.append(e(f"household-h{h}", it.HouseholdVisited(campaign_id="k1", household_id=f"h{h}",
                                                              community_id="c1", outcome=outcome)))
    due = NOW - timedelta(minutes=30)
    for n, steps in enumerate([["respond_on_time", "resolve", "rate5"], ["respond_late", "explain", "rate2", "reopen"],
                               ["open_overdue"], ["linked"]]):
        s = f"case-k{n}"
        out.append(e(s, cw.CaseOpened(case_id=f"k{n}", community_id="c1", segment=t.SEGMENT_MIGRANT,
                                      channel=t.CHANNEL_HOTLINE, promises=[cw.Promise(kind=1, due_at=ts(due))])))
        for step in steps:
            match step:
                case "respond_on_time":
                    out += [e(s, cw.CaseResponded(case_id=s)), e(s, cw.PromiseKept(case_id=s, kind=1))]
                case "respond_late":
                    out += [e(s, cw.CaseResponded(case_id=s)), e(s, cw.PromiseBroken(case_id=s, kind=1))]
                case "resolve":
                    out.append(e(s, cw.CaseResolved(case_id=s)))
                case "explain":
                    out.append(e(s, cw.CaseExplained(case_id=s)))
                case "rate5":
                    out.append(e(s, cw.SatisfactionRated(case_id=s, score=5, satisfied=True)))
                case "rate2":
                    out.append(e(s, cw.SatisfactionRated(case_id=s, score=2)))
                case "reopen":
                    out.append(e(s, cw.CaseReopened(case_id=s, after_rating=True)))
                case "linked":
                    out.append(e(s, cw.CaseLinked(case_id=s, primary_case_id="k0")))
    out += [e("partner-p1", pr.PartnerRegistered(partner_id="p1")), e("partner-p2", pr.PartnerRegistered(partner_id="p2")),
            e("pairing-x", pr.PairingSigned(pairing_id="x", partner_id="p1", community_id="c1")),
            e("disbursement-d1", pr.AidDisbursed(disbursement_id="d1", kind=pr.AID_KIND_ELDERLY, resident_id="r1",
                                                 community_id="c1", amount=t.Money(fen=20_000))),
            e("disbursement-d2", pr.AidDisbursed(disbursement_id="d2", kind=pr.AID_KIND_MEDICAL, resident_id="r1",
                                                 community_id="c1", amount=t.Money(fen=5_000))),
            e("disbursement-d3", pr.AidDisbursed(disbursement_id="d3", kind=pr.AID_KIND_MEDICAL, resident_id="r2",
                                                 community_id="c1", amount=t.Money(fen=7_000)))]
    out.append(e("disbursement-d3", pr.AidDisbursementReversed(disbursement_id="d3")))
    return out


def test_the_article_figures_of_a_small_town() -> None:
    figures, _ = project(town())
    f = figures.snapshot(now=NOW)
    assert (f["households_due"], f["households_visited"], f["visit_coverage"]) == (4, 2, 0.5)
    assert f["visits"] == 4
    assert (f["issues_received"], f["contacts"]) == (3, 4)  # the linked repeat is a contact, not an issue
    assert f["responded"] == 2 and abs(f["response_rate"] - 2 / 3) < 1e-9
    # honest denominator: the open overdue case counts as late
    assert (f["response_promises_kept"], f["response_promises_late"]) == (1, 2)
    assert abs(f["on_time_response_rate"] - 1 / 3) < 1e-9 and f["open_overdue"] == 1
    assert (f["resolved"], f["explained"]) == (1, 0)  # the explained case was reopened
    assert (f["ratings"], f["satisfaction_mean"], f["satisfied_share"]) == (2, 3.5, 0.5)
    assert (f["reopened"], f["reopen_rate"]) == (1, 0.5)
    assert (f["member_units"], f["units_with_pairing"], f["pairing_signing_rate"]) == (2, 1, 0.5)
    assert f["aid_paid_fen"] == 25_000 and f["aid_paid_fen_by_kind"] == {"AID_KIND_ELDERLY": 20_000,
                                                                          "AID_KIND_MEDICAL": 5_000}
    assert (f["aid_person_times"], f["aid_distinct_persons"]) == (2, 1)


def test_segment_and_community_filters() -> None:
    figures, _ = project(town())
    assert figures.snapshot(segment=t.SEGMENT_MIGRANT, now=NOW)["issues_received"] == 3
    assert figures.snapshot(segment=t.SEGMENT_LOCAL, now=NOW)["issues_received"] == 0
    assert figures.snapshot(community="c2", now=NOW)["households"] == 0


def test_redelivered_events_change_nothing() -> None:
    events = town()
    once, _ = project(events)
    twice, _ = project(events + events[::-1] + random.Random(1).sample(events, len(events)))
    assert once.snapshot(now=NOW) == twice.snapshot(now=NOW)


@settings(max_examples=30, deadline=None)
@given(st.randoms(use_true_random=False))
def test_figures_from_rows_equal_figures_kept_incrementally(rnd) -> None:
    """What recovery recomputes equals what the live worker kept, whatever the interleaving
    of streams and the duplicates."""
    events = town()
    by_stream = {}
    for env in events:
        by_stream.setdefault(env.stream_id, []).append(env)
    streams = list(by_stream.values())
    interleaved = []
    while any(streams):
        s = rnd.choice([s for s in streams if s])
        interleaved.append(s.pop(0))
        if rnd.random() < 0.3:
            interleaved.append(interleaved[rnd.randrange(len(interleaved))])
    live, rows = project(interleaved)
    assert Figures.from_rows(rows.values()).snapshot(now=NOW) == live.snapshot(now=NOW)
    assert live.snapshot(now=NOW) == project(events)[0].snapshot(now=NOW)


@settings(max_examples=20, deadline=None)
@given(st.randoms(use_true_random=False))
def test_figures_of_distinct_rows_counted_equal_figures_of_every_row(rnd) -> None:
    """A recompute decodes each distinct row once with how many streams hold it
    (row_codec.counted_rows): the same figures and events as every row one by one."""
    _, rows = project(town())
    held = [encode_row(r) for r in rows.values()]
    held = held + rnd.sample(held, len(held) // 2) + [None, b""]  # repeated rows; empty slots
    rnd.shuffle(held)
    counted = list(counted_rows(held))
    assert len(counted) < len(held) - 2  # the town's rows do repeat
    once = Figures.from_counted(counted)
    each = Figures.from_rows(decode_row(v) for v in held if v)
    assert once.snapshot(now=NOW) == each.snapshot(now=NOW)
    assert once.events == each.events == sum(decode_row(v)["v"] for v in held if v)


def test_readers_of_one_scope_share_its_snapshot_until_the_figures_or_the_second_change() -> None:
    from ganshou_metrics.api.servicer import Snapshots

    f, made = Figures(), []
    real = f.snapshot
    f.snapshot = lambda *a: made.append(a[:2]) or real(*a)  # type: ignore[method-assign]
    snapshots, at = Snapshots(), NOW.replace(microsecond=100)
    first = snapshots.get(f, "c1", 0, at)
    assert snapshots.get(f, "c1", 0, at.replace(microsecond=900)) is first and made == [("c1", 0)]
    snapshots.get(f, "c2", 0, at)  # another scope
    f.events += 1  # an event applied
    snapshots.get(f, "c1", 0, at)
    later = at.replace(second=at.second + 1)  # a promise may fall due
    held = snapshots.get(f, "c1", 0, later)
    assert made == [("c1", 0), ("c2", 0), ("c1", 0), ("c1", 0)]
    other = Figures()  # a recompute's new figures, at the same count of events
    other.events = f.events
    assert snapshots.get(other, "c1", 0, later) is not held
