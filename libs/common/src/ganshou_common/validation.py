"""Field checks shared by every service: collect every violation, then raise once.

    v = Violations()
    v.required("name", request.name)
    v.enum("segment", request.segment, Segment)
    v.raise_if_any()
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from functools import cache
from datetime import date, datetime, timedelta

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from ganshou_common.errors import FieldViolation, InvalidArgument

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HALF_YEAR = re.compile(r"^(\d{4})H([12])$")


@cache
def _known(enum: EnumTypeWrapper) -> frozenset[int]:
    """An enum's values, once: `EnumTypeWrapper.values()` builds a new list at every call
    (~5% of a bulk import's server CPU when asked per row)."""
    return frozenset(enum.values())


def _begun(now: datetime) -> date:
    """The latest day begun anywhere by `now`: today at UTC+14 (a town's own zone is not configured)."""
    return (now + timedelta(hours=14)).date()


LEEWAY = timedelta(minutes=5)  # how far ahead a client's clock may run
# The most one record may count (person-times, members, capacity) and the most money one
# amount may be: far beyond any town's, and far enough below int64 that the town's sums
# never overflow the figures (a record of 9.2e18 person-times once left GetFigures failing).
MAX_COUNT = 1_000_000
MAX_FEN = 100_000_000_000  # 1 billion yuan


class Violations:
    def __init__(self, prefix: str = ""):
        self.items: list[FieldViolation] = []
        self.prefix = prefix

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(self.prefix + field, description))

    def required(self, field: str, value: str, max_len: int = 500) -> None:
        if not value or not value.strip():
            self.add(field, "required")
        elif len(value) > max_len:
            self.add(field, f"at most {max_len} characters")

    def optional_text(self, field: str, value: str, max_len: int = 2000) -> None:
        if len(value) > max_len:
            self.add(field, f"at most {max_len} characters")

    def code(self, field: str, value: str) -> None:
        if not _ID.match(value or ""):
            self.add(field, "required: lowercase letters, digits and '-', at most 40 characters")

    def enum(self, field: str, value: int, enum: EnumTypeWrapper) -> None:
        if value == 0:
            self.add(field, f"required: one of {', '.join(enum.keys()[1:])}")
        elif value not in _known(enum):
            self.add(field, f"unknown value {value}")

    def enums(self, field: str, values: Iterable[int], enum: EnumTypeWrapper, at_least_one: bool = False) -> None:
        values = list(values)
        if at_least_one and not values:
            self.add(field, f"at least one of {', '.join(enum.keys()[1:])}")
        for i, value in enumerate(values):
            if value == 0 or value not in _known(enum):
                self.add(f"{field}[{i}]", f"must be one of {', '.join(enum.keys()[1:])}")

    def count(self, field: str, value: int, at_least: int = 1) -> None:
        if not at_least <= value <= MAX_COUNT:
            self.add(field, f"from {at_least:,} to {MAX_COUNT:,}")

    def fen(self, field: str, value: int, at_least: int = 1) -> None:
        if not at_least <= value <= MAX_FEN:
            self.add(field, f"an amount in integer fen (1 yuan = 100 fen), from {at_least:,} to {MAX_FEN:,}")

    def day(self, field: str, value: str, now: datetime) -> None:
        """A calendar day (YYYY-MM-DD) that has begun somewhere on earth by now (UTC+14)."""
        try:
            day = date.fromisoformat(value) if _DAY.match(value) else None
        except ValueError:
            day = None
        if day is None:
            self.add(field, "a day of the calendar as YYYY-MM-DD")
        elif day > _begun(now):
            self.add(field, f"{day} has not come yet: the day it happened")

    def half_year(self, field: str, value: str, now: datetime) -> None:
        """A half year (YYYYH1 or YYYYH2: one name for each, so a rule of one per period
        holds) that has begun somewhere on earth by now."""
        m = _HALF_YEAR.match(value)
        if m is None:
            self.add(field, "a half year as YYYYH1 or YYYYH2, e.g. 2026H2")
        elif date(int(m[1]), 1 if m[2] == "1" else 7, 1) > _begun(now):
            self.add(field, f"{value} has not begun yet")

    def not_in_future(self, field: str, when: datetime, now: datetime) -> None:
        """A time when something happened (a call received, a visit made): never later than
        now, give or take a device's clock (LEEWAY). Later, it would sit in the figures as a
        fact no one has seen yet, its promises' clocks not even started."""
        if when > now + LEEWAY:
            self.add(field, f"in the future ({when:%Y-%m-%d %H:%M} UTC; now {now:%Y-%m-%d %H:%M} UTC): "
                            "when it happened, or leave it out for now")

    def recent(self, field: str, when: datetime, now: datetime, within: timedelta) -> None:
        """A time when something happened that is logged soon after it (a hotline call): not
        in the future and no longer ago than `within`. Older, it would land in figures long
        reported, its promise judged late the moment it is logged."""
        self.not_in_future(field, when, now)
        if when < now - within:
            self.add(field, f"{when:%Y-%m-%d %H:%M} UTC is more than {within.days} days ago: "
                            f"log it within {within.days} days of when it happened")

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(self.items)


def page_size(value: int, default: int = 50, maximum: int = 500) -> int:
    if value < 0:
        raise InvalidArgument.field("page_size", "must not be negative")
    return min(value or default, maximum)


def encode_page_token(last_key: str) -> str:
    """An opaque page token: where the next page starts after."""
    return base64.urlsafe_b64encode(b"after:" + last_key.encode()).decode()


def decode_page_token(token: str) -> str:
    if not token:
        return ""
    try:
        raw = base64.urlsafe_b64decode(token.encode())
        if raw.startswith(b"after:"):
            return raw[6:].decode()
    except (ValueError, binascii.Error):  # not base64, or not UTF-8 within
        pass
    raise InvalidArgument.field("page_token", "not a token from a previous page")


# The times a request may carry: those of a town's service, 2000-01-01 … 2099-12-31 (a
# Timestamp allows years 1–9999, but asyncpg stores 0001-01-01 00:00 exactly as -infinity,
# which once stopped a relay on the event it could not date).
_MIN_S, _MAX_S = 946684800, 4102444799


def check_request(msg, prefix: str = "") -> None:
    """Checks every RPC's request gets before any handler sees it: each Timestamp is one of
    this century, and no text holds a NUL character (PostgreSQL text cannot store one). A
    failure is INVALID_ARGUMENT naming the field."""
    v = Violations()
    _walk(msg, prefix, v)
    v.raise_if_any()


def _walk(msg, prefix: str, v: Violations) -> None:
    for f, value in msg.ListFields():
        if f.type == f.TYPE_STRING:
            for i, text in (enumerate(value) if f.is_repeated else [(None, value)]):
                if "\x00" in text:
                    v.add(f"{prefix}{f.name}" + (f"[{i}]" if i is not None else ""), "must not contain NUL characters")
            continue
        if f.type != f.TYPE_MESSAGE or f.message_type.GetOptions().map_entry:
            continue
        items = list(enumerate(value)) if f.is_repeated else [(None, value)]
        for i, item in items:
            path = f"{prefix}{f.name}" + (f"[{i}]" if i is not None else "")
            if f.message_type.full_name == "google.protobuf.Timestamp":
                if not (_MIN_S <= item.seconds <= _MAX_S and 0 <= item.nanos <= 999_999_999):
                    v.add(path, "not a time of this service (years 2000–2099, nanos 0–999,999,999)")
            else:
                _walk(item, path + ".", v)
