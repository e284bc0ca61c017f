"""The projection, free of I/O: each event updates one row per stream, and the figures
are sums of the facts those rows contribute.

A row is `{"v": last applied version, "t": stream type, "s": state}`. Applying an event
whose version is not above `v` changes nothing: redelivery, a crash or a rebalance never
counts twice. A row's facts are derived from its state alone, so the figures can be
recomputed from the rows at any time (after recovery) and kept up to date by replacing a
row's old facts with its new ones.

A fact is (metric, community, segment, channel, extra, value): `extra` carries a
campaign, a deliberation, a kind, a resident (for distinct counts) or a due time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from google.protobuf.message import Message

from ganshou.casework.v1 import events_pb2 as cw
from ganshou.common.v1 import envelope_pb2
from ganshou.intake.v1 import events_pb2 as it
from ganshou.partner_resource.v1 import events_pb2 as pr
from ganshou_common.codec import decode_payload

Fact = tuple[str, str, int, int, str, int]
Row = dict

RESPONSE, ON_SITE = cw.PROMISE_KIND_RESPONSE, cw.PROMISE_KIND_ON_SITE
# Case status, as the projection tracks it
OPEN, RESOLVED, EXPLAINED, LINKED = "open", "resolved", "explained", "linked"


def _secs(ts) -> int:
    return int(ts.seconds)


def apply(row: Row | None, env: envelope_pb2.EventEnvelope, msg: Message | None = None) -> Row | None:
    """The row after `env` (whose payload `msg` is, when the caller decoded it already), or
    None when the event was applied already (or means nothing to any figure: the row is then
    unchanged but its version still moves on)."""
    if row is not None and env.stream_version <= row["v"]:
        return None
    if msg is None:
        msg = decode_payload(env.event_type, env.payload.value)
    state = dict(row["s"]) if row else {}
    kind = row["t"] if row else env.stream_type or env.stream_id.split("-", 1)[0]
    _APPLY.get(type(msg), _ignore)(state, msg, env)
    return {"v": env.stream_version, "t": kind, "s": state}


def _ignore(state: dict, msg: Message, env) -> None:
    pass


# ---- intake --------------------------------------------------------------------------------

def _community(s, m: it.CommunityRegistered, env):
    s.update(kind="community", c=m.community_id)


def _household(s, m: it.HouseholdRegistered, env):
    segments = m.segments  # each read of a repeated field makes a new container (~190 ns)
    s.update(kind="household", c=m.community_id, seg=segments[0] if segments else 0, met=[])


def _visited(s, m: it.HouseholdVisited, env):
    s["visits"] = s.get("visits", 0) + 1
    s.setdefault("c", m.community_id)
    if m.outcome == it.VISIT_OUTCOME_MET and m.campaign_id not in s.setdefault("met", []):
        s["met"] = [*s["met"], m.campaign_id]


def _resident(s, m: it.ResidentRegistered, env):
    s.update(kind="resident", c=m.community_id, seg=m.segment, erased=False)


def _erased(s, m: it.ResidentErased, env):
    s["erased"] = True


def _campaign(s, m: it.VisitCampaignOpened, env):
    s.update(kind="campaign", c=m.community_id, id=m.campaign_id, due=m.households_due)


def _demand(s, m: it.DemandRaised, env):
    s.update(kind="demand", c=m.community_id, seg=m.segment, ch=m.channel)


def _call(s, m: it.HotlineCallReceived, env):
    s.update(kind="call", c=m.community_id, emergency=m.kind == it.CALL_KIND_EMERGENCY)


# ---- casework ------------------------------------------------------------------------------

def _case_opened(s, m: cw.CaseOpened, env):
    s.update(kind="case", c=m.community_id, seg=m.segment, ch=m.channel, status=OPEN, responded=False,
             track=0, ratings=0, score_sum=0, satisfied=0, reopened=0, emergency=m.urgency == 2,
             promises={str(p.kind): ["pending", _secs(p.due_at)] for p in m.promises})


def _promise(state: str):
    def update(s, m, env):
        p = s["promises"].get(str(m.kind))
        if p is not None:
            s["promises"] = {**s["promises"], str(m.kind): [state, p[1]]}
    return update


def _set(**values):
    def update(s, m, env):
        s.update(values)
    return update


def _triaged(s, m: cw.CaseTriaged, env):
    s["track"] = m.track


def _rated(s, m: cw.SatisfactionRated, env):
    s.update(ratings=s["ratings"] + 1, score_sum=s["score_sum"] + m.score, satisfied=s["satisfied"] + int(m.satisfied))


def _reopened(s, m: cw.CaseReopened, env):
    s.update(status=OPEN, reopened=s["reopened"] + 1)


def _linked(s, m: cw.CaseLinked, env):
    s["status"] = LINKED
    s["promises"] = {k: (["withdrawn", v[1]] if v[0] == "pending" else v) for k, v in s["promises"].items()}


def _contact(s, m: cw.ContactAdded, env):
    s["contacts"] = s.get("contacts", 0) + 1


def _deliberation(s, m: cw.DeliberationOpened, env):
    s.update(kind="deliberation", c=m.community_id, eligible=m.households_eligible)


def _vote(s, m: cw.HouseholdVoted, env):
    s.update(kind="vote", c=env.community_id, choice=m.choice)


def _appraisal(s, m: cw.AppraisalRecorded, env):
    s.update(kind="appraisal", c=m.community_id, score=m.score)


def _post(s, m: cw.ResponsibilityPostEstablished, env):
    s.update(kind="post", c=m.community_id)


# ---- partner-resource ----------------------------------------------------------------------

def _partner(s, m: pr.PartnerRegistered, env):
    s.update(kind="partner", id=m.partner_id, active=True)


def _pairing(s, m: pr.PairingSigned, env):
    s.update(kind="pairing", c=m.community_id, p=m.partner_id, active=True)


def _agreement(s, m: pr.AgreementRecorded, env):
    s.update(kind="agreement", c=m.community_id, cat=pr.AgreementCategory.Name(m.category))


def _delivery(s, m: pr.ServiceDelivered, env):
    s.update(kind="delivery", c=m.community_id, seg=m.segment, n=m.person_times)


def _disbursed(s, m: pr.AidDisbursed, env):
    s.update(kind="aid", c=m.community_id, seg=m.segment, k=pr.AidKind.Name(m.kind), fen=m.amount.fen,
             r=m.resident_id, reversed=False)


def _offering(s, m: pr.OfferingPublished, env):
    s.update(kind="offering")


def _matched(s, m: pr.OfferingMatched, env):
    s.update(kind="match", c=m.community_id)


def _organisation(s, m: pr.OrganisationEnrolled, env):
    s.update(kind="organisation", c=m.community_id, items=[], applied=False, designated=False)


def _item(s, m: pr.StandardItemCompleted, env):
    if m.item not in s["items"]:
        s["items"] = [*s["items"], m.item]


def _designation(s, m: pr.DemonstrationDecided, env):
    s["designated"] = m.designated


def _commitment(s, m: pr.CommitmentMade, env):
    s.update(kind="commitment", c=m.community_id, fulfilled=False)


def _members(s, m: pr.PartnerMembersRegistered, env):
    s.update(kind="members", c=m.community_id, n=m.members)


def _volunteer(s, m: pr.VolunteerRegistered, env):
    s.update(kind="volunteer", c=m.community_id, seg=m.segment)


def _activity(s, m: pr.VolunteerActivityRecorded, env):
    by_seg: dict[str, int] = {}
    for v in m.volunteers:
        by_seg[str(v.segment)] = by_seg.get(str(v.segment), 0) + v.minutes
    s.update(kind="activity", c=m.community_id, minutes=by_seg)


def _after_hours(s, m: pr.AfterHoursServed, env):
    s.update(kind="afterhours", c=m.community_id, evening=m.evening_person_times, weekend=m.weekend_person_times)


_APPLY = {
    it.CommunityRegistered: _community, it.HouseholdRegistered: _household, it.HouseholdVisited: _visited,
    it.ResidentRegistered: _resident, it.ResidentErased: _erased, it.VisitCampaignOpened: _campaign,
    it.DemandRaised: _demand, it.HotlineCallReceived: _call,
    cw.CaseOpened: _case_opened, cw.CaseResponded: _set(responded=True), cw.CaseTriaged: _triaged,
    cw.CaseResolved: _set(status=RESOLVED), cw.CaseExplained: _set(status=EXPLAINED), cw.SatisfactionRated: _rated,
    cw.CaseReopened: _reopened, cw.PromiseKept: _promise("kept"), cw.PromiseBroken: _promise("broken"),
    cw.CaseLinked: _linked, cw.ContactAdded: _contact, cw.DeliberationOpened: _deliberation,
    cw.HouseholdVoted: _vote, cw.AppraisalRecorded: _appraisal, cw.ResponsibilityPostEstablished: _post,
    pr.PartnerRegistered: _partner, pr.PartnerLeft: _set(active=False), pr.PairingSigned: _pairing,
    pr.PairingEnded: _set(active=False), pr.AgreementRecorded: _agreement, pr.ServiceDelivered: _delivery,
    pr.AidDisbursed: _disbursed, pr.AidDisbursementReversed: _set(reversed=True), pr.OfferingPublished: _offering,
    pr.OfferingMatched: _matched,
    pr.OrganisationEnrolled: _organisation, pr.StandardItemCompleted: _item, pr.DemonstrationApplied: _set(applied=True),
    pr.DemonstrationDecided: _designation, pr.CommitmentMade: _commitment, pr.CommitmentFulfilled: _set(fulfilled=True),
    pr.PartnerMembersRegistered: _members, pr.VolunteerRegistered: _volunteer, pr.VolunteerActivityRecorded: _activity,
    pr.AfterHoursServed: _after_hours,
}


def facts(row: Row | None) -> list[Fact]:
    """What one stream contributes to the figures now."""
    if not row:
        return []
    s = row["s"]
    c, seg, ch = s.get("c", ""), s.get("seg", 0), s.get("ch", 0)
    match s.get("kind"):
        case "community":
            return [("communities", c, 0, 0, "", 1)]
        case "household":
            out = [("households", c, seg, 0, "", 1), ("visits", c, seg, 0, "", s.get("visits", 0))]
            return out + [("households_visited", c, seg, 0, campaign, 1) for campaign in s.get("met", [])]
        case "resident":
            return [("residents", c, seg, 0, "", 1), ("residents_erased", c, seg, 0, "", int(s["erased"]))]
        case "campaign":
            return [("households_due", c, 0, 0, s["id"], s["due"])]
        case "demand":
            return [("demands", c, seg, ch, "", 1)]
        case "call":
            return [("hotline_calls", c, 0, 0, "", 1), ("emergency_calls", c, 0, 0, "", int(s["emergency"]))]
        case "case":
            return _case_facts(s, c, seg, ch)
        case "deliberation":
            return [("deliberations", c, 0, 0, "", 1), ("households_eligible", c, 0, 0, "", s["eligible"])]
        case "vote":
            return [("votes", c, 0, 0, str(s["choice"]), 1)]
        case "appraisal":
            return [("appraisals", c, 0, 0, "", 1), ("appraisal_score", c, 0, 0, "", s["score"])]
        case "post":
            return [("posts", c, 0, 0, "", 1)]
        case "partner":
            return [("member_units", "", 0, 0, s["id"], int(s["active"]))]
        case "pairing":
            return [("pairings", c, 0, 0, s["p"], int(s["active"]))]
        case "agreement":
            return [("agreements", c, 0, 0, s["cat"], 1)]
        case "delivery":
            return [("service_person_times", c, seg, 0, "", s["n"])]
        case "aid":
            live = 0 if s["reversed"] else 1
            return [("aid_fen", c, seg, 0, s["k"], s["fen"] * live), ("aid_person_times", c, seg, 0, s["k"], live),
                    ("aid_beneficiary", c, seg, 0, s["r"], live)]
        case "offering":
            return [("offerings", "", 0, 0, "", 1)]
        case "match":
            return [("partner_matches", c, 0, 0, "", 1)]
        case "organisation":
            return [("organisations", c, 0, 0, "", 1), ("standard_items", c, 0, 0, "", len(s["items"])),
                    ("organisations_all_six", c, 0, 0, "", int(len(s["items"]) == 6)),
                    ("demonstration_applications", c, 0, 0, "", int(s["applied"])),
                    ("demonstration_designations", c, 0, 0, "", int(s["designated"]))]
        case "commitment":
            return [("commitments_made", c, 0, 0, "", 1), ("commitments_fulfilled", c, 0, 0, "", int(s["fulfilled"]))]
        case "members":
            return [("partner_members", c, 0, 0, "", s["n"])]
        case "volunteer":
            return [("volunteers", c, seg, 0, "", 1)]
        case "activity":
            return [("volunteer_activities", c, 0, 0, "", 1),
                    *[("volunteer_minutes", c, int(k), 0, "", v) for k, v in s["minutes"].items()]]
        case "afterhours":
            return [("after_hours_evening", c, 0, 0, "", s["evening"]), ("after_hours_weekend", c, 0, 0, "", s["weekend"])]
    return []


def _case_facts(s: dict, c: str, seg: int, ch: int) -> list[Fact]:
    if s["status"] == LINKED:  # a repeated report: a contact on another case, not a problem of its own
        return [("contacts", c, seg, ch, "", 1)]
    out: list[Fact] = [
        ("issues_received", c, seg, ch, "", 1), ("contacts", c, seg, ch, "", 1 + s.get("contacts", 0)),
        ("responded", c, seg, ch, "", int(s["responded"])),
        ("resolved", c, seg, ch, "", int(s["status"] == RESOLVED)),
        ("explained", c, seg, ch, "", int(s["status"] == EXPLAINED)),
        ("ratings", c, seg, ch, "", s["ratings"]), ("score_sum", c, seg, ch, "", s["score_sum"]),
        ("satisfied", c, seg, ch, "", s["satisfied"]), ("reopened", c, seg, ch, "", int(s["reopened"] > 0)),
        ("rated_cases", c, seg, ch, "", int(s["ratings"] > 0)),
        ("emergencies", c, seg, ch, "", int(s["emergency"])),
    ]
    if s["track"]:
        out.append(("cases_by_track", c, seg, ch, cw.Track.Name(s["track"]), 1))
    for kind, (state, due) in s["promises"].items():
        if state in ("kept", "broken"):
            out.append((f"promise_{state}", c, seg, ch, kind, 1))
        elif state == "pending":  # judged at read time: past due and open counts as late
            out.append(("promise_pending", c, seg, ch, f"{kind}:{due}", 1))
    return out


class Figures:
    """The sums of every row's facts, kept per fact key; rates are computed when read."""

    def __init__(self) -> None:
        self.sums: dict[str, dict[tuple, int]] = {}
        self.events = 0

    def add(self, fs: Iterable[Fact], sign: int = 1) -> None:
        """Add the facts `sign` times (negative: take them away)."""
        for metric, c, seg, ch, extra, value in fs:
            if value:
                bucket = self.sums.setdefault(metric, {})
                key = (c, seg, ch, extra)
                total = bucket.get(key, 0) + sign * value
                if total:
                    bucket[key] = total
                else:
                    bucket.pop(key, None)

    def replace(self, old: Row | None, new: Row) -> None:
        self.add(facts(old), -1)
        self.add(facts(new), +1)

    @classmethod
    def from_rows(cls, rows: Iterable[Row]) -> "Figures":
        """The figures of these rows; `events`, the events they applied (each row's version)."""
        return cls.from_counted((row, 1) for row in rows)

    @classmethod
    def from_counted(cls, counted: Iterable[tuple[Row, int]]) -> "Figures":
        """The figures of rows given once with how many rows are equal to each: a town's rows
        repeat (a resident's holds its community and segment, no id), and their facts are
        the row's alone."""
        f = cls()
        for row, n in counted:
            f.add(facts(row), n)
            f.events += row["v"] * n
        return f

    def absorb(self, other: "Figures") -> None:
        """Add another set of rows' figures (rows disjoint from this one's)."""
        for metric, bucket in other.sums.items():
            mine = self.sums.setdefault(metric, {})
            for key, value in bucket.items():
                total = mine.get(key, 0) + value
                if total:
                    mine[key] = total
                else:
                    mine.pop(key, None)
        self.events += other.events

    def total(self, metric: str, community: str = "", segment: int = 0, extra: str | None = None) -> int:
        return sum(v for k, v in self._items(metric, community, segment) if extra is None or k[3] == extra)

    def _items(self, metric: str, community: str, segment: int):
        for key, v in self.sums.get(metric, {}).items():
            if (not community or key[0] == community) and (not segment or key[1] == segment):
                yield key, v

    def by_extra(self, metric: str, community: str = "", segment: int = 0) -> dict[str, int]:
        out: dict[str, int] = {}
        for key, v in self._items(metric, community, segment):
            out[key[3]] = out.get(key[3], 0) + v
        return out

    def distinct_extra(self, metric: str, community: str = "", segment: int = 0) -> int:
        return len({key[3] for key, v in self._items(metric, community, segment) if v > 0})

    def snapshot(self, community: str = "", segment: int = 0, now: datetime | None = None) -> dict:
        """Every figure of DOMAIN.md for a community (or the town) and segment (or all)."""
        now_s = int((now or datetime.now(UTC)).timestamp())
        t = lambda m, e=None: self.total(m, community, segment, e)  # noqa: E731
        no_seg = segment == 0  # figures with no segment dimension count only unsegmented
        overdue = {RESPONSE: 0, ON_SITE: 0}
        for key, v in self._items("promise_pending", community, segment):
            kind, due = key[3].split(":")
            if int(due) < now_s:
                overdue[int(kind)] += v
        kept_r, broken_r = t("promise_kept", str(RESPONSE)), t("promise_broken", str(RESPONSE))
        kept_s, broken_s = t("promise_kept", str(ON_SITE)), t("promise_broken", str(ON_SITE))
        received, ratings = t("issues_received"), t("ratings")
        due = t("households_due") if no_seg else 0
        visited = t("households_visited")
        units = self.distinct_extra("member_units") if no_seg and not community else 0
        paired_units = len({k[3] for k, v in self._items("pairings", community, 0) if v > 0}) if no_seg else 0
        votes = self.by_extra("votes", community) if no_seg else {}
        voted, eligible = sum(votes.values()), t("households_eligible") if no_seg else 0
        aid_by_kind = self.by_extra("aid_fen", community, segment)
        appraisals = t("appraisals") if no_seg else 0
        return {
            "communities": t("communities") if no_seg else 0, "households": t("households"),
            "residents": t("residents"), "residents_erased": t("residents_erased"),
            "households_due": due, "households_visited": visited, "visit_coverage": _rate(visited, due),
            "visits": t("visits"), "hotline_calls": t("hotline_calls") if no_seg else 0,
            "emergency_calls": t("emergency_calls") if no_seg else 0, "demands": t("demands"),
            "demands_by_channel": _names(self.by_extra_channel("demands", community, segment)),
            "issues_received": received, "contacts": t("contacts"), "responded": t("responded"),
            "response_rate": _rate(t("responded"), received),
            "response_promises_kept": kept_r, "response_promises_late": broken_r + overdue[RESPONSE],
            "on_time_response_rate": _rate(kept_r, kept_r + broken_r + overdue[RESPONSE]),
            "emergencies": t("emergencies"), "on_site_kept": kept_s, "on_site_late": broken_s + overdue[ON_SITE],
            "on_site_within_15_min_rate": _rate(kept_s, kept_s + broken_s + overdue[ON_SITE]),
            "resolved": t("resolved"), "explained": t("explained"),
            "resolved_or_explained_rate": _rate(t("resolved") + t("explained"), received),
            "cases_by_track": self.by_extra("cases_by_track", community, segment),
            "open_overdue": overdue[RESPONSE] + overdue[ON_SITE],
            "ratings": ratings, "satisfaction_mean": _rate(t("score_sum"), ratings),
            "satisfied_share": _rate(t("satisfied"), ratings), "reopened": t("reopened"),
            "reopen_rate": _rate(t("reopened"), t("rated_cases")),
            "member_units": units, "units_with_pairing": paired_units if not community else 0,
            "pairing_signing_rate": _rate(paired_units, units), "active_pairings": t("pairings") if no_seg else 0,
            "agreements_by_category": self.by_extra("agreements", community) if no_seg else {},
            "service_person_times": t("service_person_times"),
            "aid_paid_fen": sum(aid_by_kind.values()), "aid_paid_fen_by_kind": aid_by_kind,
            "aid_person_times": t("aid_person_times"),
            "aid_distinct_persons": self.distinct_extra("aid_beneficiary", community, segment),
            "deliberations": t("deliberations") if no_seg else 0, "deliberation_households_eligible": eligible,
            "deliberation_households_voted": voted, "deliberation_turnout": _rate(voted, eligible),
            "votes_for": votes.get(str(cw.VOTE_CHOICE_FOR), 0),
            "deliberation_approval": _rate(votes.get(str(cw.VOTE_CHOICE_FOR), 0), voted),
            "appraisals": appraisals, "appraisal_mean": _rate(t("appraisal_score"), appraisals) if no_seg else 0.0,
            "responsibility_posts": t("posts") if no_seg else 0,
            "partner_matches": t("partner_matches") if no_seg else 0,
            "organisations": t("organisations") if no_seg else 0,
            "standard_items_completed": t("standard_items") if no_seg else 0,
            "organisations_all_six": t("organisations_all_six") if no_seg else 0,
            "demonstration_applications": t("demonstration_applications") if no_seg else 0,
            "demonstration_designations": t("demonstration_designations") if no_seg else 0,
            "commitments_made": t("commitments_made") if no_seg else 0,
            "commitments_fulfilled": t("commitments_fulfilled") if no_seg else 0,
            "partner_members_registered": t("partner_members") if no_seg else 0,
            "volunteers": t("volunteers"),
            "volunteer_activities": t("volunteer_activities") if no_seg else 0,
            "volunteer_minutes": t("volunteer_minutes"),
            "after_hours_evening_person_times": t("after_hours_evening") if no_seg else 0,
            "after_hours_weekend_person_times": t("after_hours_weekend") if no_seg else 0,
        }

    def communities(self) -> list[str]:
        keys = set(self.sums.get("communities", {})) | set(self.sums.get("issues_received", {}))
        return sorted({k[0] for k in keys} - {""})

    def by_extra_channel(self, metric: str, community: str, segment: int) -> dict[int, int]:
        out: dict[int, int] = {}
        for key, v in self._items(metric, community, segment):
            out[key[2]] = out.get(key[2], 0) + v
        return out


def _rate(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def _names(by_channel: dict[int, int]) -> dict[str, int]:
    from ganshou.common.v1 import types_pb2

    return {types_pb2.Channel.Name(k).removeprefix("CHANNEL_").lower(): v for k, v in by_channel.items()}
