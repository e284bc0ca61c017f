"""GetFigures and WatchFigures: the live figures, scoped like every other read."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from ganshou.common.v1 import types_pb2
from ganshou.metrics.v1 import metrics_service_pb2 as api
from ganshou.metrics.v1 import metrics_service_pb2_grpc as rpc
from ganshou_common.errors import InvalidArgument, PermissionDenied, Unavailable
from ganshou_common.grpc_scaffold.auth import Principal, Role
from ganshou_common.grpc_scaffold.interceptor import current_principal
from ganshou_common.grpc_scaffold.policy import admits
from ganshou_common.validation import Violations
from ganshou_metrics.adapters.faust_app import Projection

SERVICE = "ganshou.metrics.v1.MetricsService"
READERS = (Role.TOWN_ADMIN, Role.COMMUNITY_CADRE, Role.HOTLINE_OPERATOR, Role.PARTNER_STAFF, Role.AUDITOR)


def _check(who: Principal, community_id: str, segment: int) -> None:
    v = Violations()
    if segment and segment not in types_pb2.Segment.values():
        v.add("segment", f"unknown segment {segment}")
    if community_id:  # an id no community could have; one not projected yet answers zeros
        v.code("community_id", community_id)
    v.raise_if_any()
    if who.role == Role.COMMUNITY_CADRE and not community_id:
        if len(who.communities) != 1:
            raise InvalidArgument.field("community_id", "required: name one of your communities")
    elif community_id:
        who.require_community(community_id)
    elif who.role == Role.PARTNER_STAFF:
        raise PermissionDenied("partner staff see town-wide figures only through the town's reports")


def figures_message(snapshot: dict) -> api.Figures:
    return api.Figures(**snapshot)


class Snapshots:
    """One snapshot per scope (community, segment), state of the figures and second, shared
    by every reader and watcher of that scope: a town's dashboards watch a few scopes, and a
    snapshot costs ~1.6 ms (measured 2026-11-30: 300 watchers beside 17 commands/s took 0.57
    of a core against 0.14 with none). Exact: a snapshot depends on nothing else (its clock
    counts whole seconds), and the live path counts every change in `events` (a recompute
    makes new figures)."""

    MAX_SCOPES = 1024  # scopes are named by callers: never an unbounded cache

    def __init__(self) -> None:
        self._held: dict[tuple[str, int], tuple[object, int, int, dict]] = {}

    def get(self, figures, community: str, segment: int, now: datetime) -> dict:
        second, scope = int(now.timestamp()), (community, segment)
        held = self._held.get(scope)
        if held is not None and held[0] is figures and held[1] == figures.events and held[2] == second:
            return held[3]
        snap = figures.snapshot(community, segment, now)
        if len(self._held) >= self.MAX_SCOPES:
            self._held.clear()
        self._held[scope] = (figures, figures.events, second, snap)  # the figures held: their id is never reused
        return snap


class MetricsServicer(rpc.MetricsServiceServicer):
    def __init__(self, projection: Projection):
        self.projection = projection
        self.snapshots = Snapshots()
        self._stopping = False

    def stop_watchers(self) -> None:
        """End every WatchFigures stream with UNAVAILABLE, so its client watches again (on
        another replica) at once: called as the server stops, before its grace period, which
        a stream that would never change again would otherwise wait out (10 s)."""
        self._stopping = True
        self.projection.changed.set()

    def _still_serving(self) -> None:
        if self._stopping:
            raise Unavailable("the figures' server is stopping: watch again")

    def _snapshot(self, who: Principal, community_id: str, segment: int) -> tuple[dict, datetime, int]:
        _check(who, community_id, segment)
        if who.role == Role.COMMUNITY_CADRE and not community_id:
            community_id = next(iter(who.communities))
        now = datetime.now(UTC)
        f = self.projection.figures
        return self.snapshots.get(f, community_id, segment, now), now, f.events

    @admits(*READERS)
    async def GetFigures(self, request, context):
        snap, now, events = self._snapshot(current_principal(), request.community_id, request.segment)
        who = current_principal()
        out = api.GetFiguresResponse(figures=figures_message(snap), events_projected=events,
                                     communities=[c for c in self.projection.figures.communities()
                                                  if who.covers_community(c)])
        out.as_of.FromDatetime(now)
        return out

    @admits(*READERS)
    async def WatchFigures(self, request, context):
        who = current_principal()
        interval = max(50, request.min_interval_ms or 500) / 1000
        last: dict | None = None
        while True:
            self._still_serving()
            snap, now, events = self._snapshot(who, request.community_id, request.segment)
            if snap != last:  # coalesced: one update per interval at most, only on change
                last = snap
                out = api.WatchFiguresResponse(figures=figures_message(snap), events_projected=events)
                out.as_of.FromDatetime(now)
                yield out
            self.projection.changed.clear()
            try:
                await asyncio.wait_for(self.projection.changed.wait(), timeout=5.0)
            except TimeoutError:
                pass  # re-evaluate anyway: an open promise can become overdue with no event
            self._still_serving()
            await asyncio.sleep(interval)
