"""Building intake's events from validated commands: pure, no I/O.

Stream ids are `<kind>-<id>`; the event's community is stamped for routing and figures.
"""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from ganshou.common.v1 import types_pb2
from ganshou.intake.v1 import events_pb2 as ev

STREAM_TYPES = ("community", "household", "resident", "campaign", "demand", "call")


def stream(kind: str, entity_id: str) -> str:
    return f"{kind}-{entity_id}"


def ts(moment: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(moment)
    return t


def demand_segment(resident_segment: int | None, household_segments: list[int]) -> int:
    """The segment a demand counts for: its resident's, else the household's first."""
    if resident_segment:
        return resident_segment
    return household_segments[0] if household_segments else types_pb2.SEGMENT_UNSPECIFIED


def urgency_of_call(kind: int) -> int:
    return types_pb2.URGENCY_EMERGENCY if kind == ev.CALL_KIND_EMERGENCY else types_pb2.URGENCY_NORMAL


def call_raises_demand(kind: int) -> bool:
    return kind in (ev.CALL_KIND_DEMAND, ev.CALL_KIND_EMERGENCY)
