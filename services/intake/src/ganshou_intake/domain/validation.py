"""Intake's own field rules: phone numbers and resident ID numbers (GB 11643-1999)."""

from __future__ import annotations

import re

from ganshou.intake.v1 import intake_service_pb2 as api
from ganshou.common.v1 import types_pb2
from ganshou_common.validation import Violations

_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE = re.compile(r"^0\d{2,3}-?\d{7,8}$")
_ID18 = re.compile(r"^\d{17}[\dX]$")
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
PHONE_FORMAT = "not a phone number: 11-digit mobile (1[3-9]…) or 0AA(A)-NNNNNNN(N)"


def valid_phone(phone: str) -> bool:
    """A mainland mobile number (11 digits from 13…19) or a landline with its area code."""
    return bool(_MOBILE.match(phone) or _LANDLINE.match(phone))


def valid_id_number(number: str) -> bool:
    """An 18-character resident identity number with a correct check character."""
    number = number.upper()
    if not _ID18.match(number):
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _WEIGHTS, strict=True))
    return _CHECK[total % 11] == number[17]


def check_resident(v: Violations, field: str, r: api.ResidentInput) -> None:
    v.required(f"{field}.name", r.name, 100)
    if r.phone and not valid_phone(r.phone):
        v.add(f"{field}.phone", PHONE_FORMAT)
    if r.id_number and not valid_id_number(r.id_number):
        v.add(f"{field}.id_number", "not a valid 18-character resident ID number (check character wrong?)")
    v.enum(f"{field}.segment", r.segment, types_pb2.Segment)
    v.enums(f"{field}.care_groups", r.care_groups, types_pb2.CareGroup)


def check_household(v: Violations, r: api.RegisterHouseholdRequest) -> None:
    v.code("community_id", r.community_id)
    v.required("address", r.address, 300)
    v.enums("segments", r.segments, types_pb2.Segment, at_least_one=True)
    v.enums("care_groups", r.care_groups, types_pb2.CareGroup)
    first: dict[str, int] = {}  # ID number → the resident who has it
    for i, res in enumerate(r.residents):
        check_resident(v, f"residents[{i}]", res)
        number = res.id_number.upper()
        if number and first.setdefault(number, i) != i:  # one person, counted once
            v.add(f"residents[{i}].id_number", f"the same ID number as residents[{first[number]}]: one person")
