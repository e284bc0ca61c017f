"""The promises a case is opened with: a response within 1 hour of a hotline demand,
someone on site within 15 minutes of an emergency. Configurable by channel and category."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ganshou.casework.v1 import events_pb2 as ev
from ganshou.common.v1 import types_pb2 as t


@dataclass(frozen=True)
class PromisePolicy:
    # Minutes to a first response, by channel (absent: no response promise).
    response_minutes: dict[int, float] = field(default_factory=lambda: {t.CHANNEL_HOTLINE: 60})
    # Minutes to someone on site for an emergency, on any channel.
    on_site_minutes_emergency: float = 15
    # Per category: (response minutes, on-site minutes), either None to keep the default.
    category_overrides: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)

    def promises(self, channel: int, urgency: int, category: str, opened_at: datetime) -> list[tuple[int, datetime]]:
        response = self.response_minutes.get(channel)
        on_site = self.on_site_minutes_emergency if urgency == t.URGENCY_EMERGENCY else None
        over = self.category_overrides.get(category)
        if over:
            response = over[0] if over[0] is not None and response is not None else response
            on_site = over[1] if over[1] is not None and on_site is not None else on_site
        out = []
        if response is not None:
            out.append((ev.PROMISE_KIND_RESPONSE, opened_at + timedelta(minutes=response)))
        if on_site is not None:
            out.append((ev.PROMISE_KIND_ON_SITE, opened_at + timedelta(minutes=on_site)))
        return out

    @classmethod
    def parse(cls, hotline_response: float, emergency_on_site: float, overrides: str) -> "PromisePolicy":
        """overrides: "medical:on_site=10,water:response=30" (minutes)."""
        table: dict[str, tuple[float | None, float | None]] = {}
        for item in filter(None, (x.strip() for x in overrides.split(","))):
            category, _, setting = item.partition(":")
            kind, _, minutes = setting.partition("=")
            resp, site = table.get(category, (None, None))
            if kind == "response":
                resp = float(minutes)
            elif kind == "on_site":
                site = float(minutes)
            else:
                raise ValueError(f"promise override {item!r}: use category:response=N or category:on_site=N")
            table[category] = (resp, site)
        return cls({t.CHANNEL_HOTLINE: hotline_response}, emergency_on_site, table)
