"""Households from a CSV file into ImportHouseholds: one row per resident, rows with the
same household_ref make one household. Columns:

    household_ref, community_id, address, segments, care_groups, name, phone, id_number, segment

segments and care_groups are ';'-separated names (local, migrant, white_collar,
high_end_talent, foreign_national; hardship, special, vulnerable). A row that cannot even
be read (an unknown segment name) is rejected here; the service checks the rest.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ganshou.common.v1 import types_pb2 as t
from ganshou.intake.v1 import intake_service_pb2 as api


@dataclass
class Parsed:
    households: list[tuple[int, api.RegisterHouseholdRequest]] = field(default_factory=list)
    rejected: list[tuple[int, str, str]] = field(default_factory=list)  # (row, field, reason)
    rows: dict[int, dict] = field(default_factory=dict)
    encoding: str = "utf-8-sig"  # the file's, as read
    lines_of: dict[int, list[int]] = field(default_factory=dict)  # a row → every row of its household

    def whole_households(self, rejected: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
        """Each rejected household with every row of it: a household is kept or rejected
        whole, so the rejected file, mended and imported again, brings all its people."""
        named = {line for line, _, _ in rejected}
        out = list(rejected)
        for line, _, _ in rejected:
            out += [(other, "household_ref", f"rejected with its household: see row {line}")
                    for other in self.lines_of.get(line, []) if other not in named]
            named.update(self.lines_of.get(line, []))
        return sorted(out)


def _enum(enum, prefix: str, names: str, column: str) -> list[int]:
    out = []
    for name in filter(None, (n.strip() for n in names.split(";"))):
        try:
            out.append(enum.Value(f"{prefix}_{name.upper()}"))
        except ValueError:
            raise ValueError(f"{column}: unknown {name!r}") from None
    return out


def read_text(path: Path) -> tuple[str, str]:
    """The file's text and its encoding: UTF-8 (with or without Excel's BOM), else GB18030 —
    what a spreadsheet saves as CSV on a Chinese-language Windows (GBK is a part of it)."""
    data = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise ValueError(f"{path} is neither UTF-8 nor GB18030 text: save it as CSV (UTF-8)")


def parse(path: Path) -> Parsed:
    out = Parsed()
    lines: dict[str, list[int]] = {}  # household_ref → its rows
    households: dict[str, api.RegisterHouseholdRequest] = {}
    unread: dict[str, list[tuple[int, str, str]]] = {}  # household_ref → its rows that cannot be read
    text, out.encoding = read_text(path)
    with io.StringIO(text, newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):  # line 1 is the header
            out.rows[line] = row
            ref = row.get("household_ref") or f"line-{line}"
            lines.setdefault(ref, []).append(line)
            try:
                resident = api.ResidentInput(
                    name=row.get("name", ""), phone=row.get("phone", ""), id_number=row.get("id_number", ""),
                    segment=(_enum(t.Segment, "SEGMENT", row.get("segment", ""), "segment") or [0])[0],
                    care_groups=_enum(t.CareGroup, "CARE_GROUP", row.get("care_groups", ""), "care_groups"))
                if ref not in households:
                    households[ref] = api.RegisterHouseholdRequest(
                        community_id=row.get("community_id", ""), address=row.get("address", ""),
                        segments=_enum(t.Segment, "SEGMENT", row.get("segments", ""), "segments"),
                        care_groups=resident.care_groups)
                households[ref].residents.append(resident)
            except ValueError as exc:
                column, _, reason = str(exc).partition(": ")
                unread.setdefault(ref, []).append((line, column, reason))
    for ref, rows in lines.items():
        out.lines_of.update(dict.fromkeys(rows, rows))
        if ref in unread:  # not sent without some of its people: rejected whole
            out.rejected += unread[ref]
        else:
            out.households.append((rows[0], households[ref]))
    return out


ROWS_PER_MESSAGE = 100  # a message read costs the service about as much as importing its household


def requests(parsed: Parsed, request_id: str, on_sent) -> Iterator[api.ImportHouseholdsRequest]:
    """The households by the hundred a message; `on_sent(n)` after each message of n."""
    households = parsed.households
    for i in range(0, len(households), ROWS_PER_MESSAGE):
        batch = households[i:i + ROWS_PER_MESSAGE]
        yield api.ImportHouseholdsRequest(request_id=request_id, rows=[
            api.ImportRow(row_number=line, household=household) for line, household in batch])
        on_sent(len(batch))


def write_rejected(path: Path, parsed: Parsed, rejected: list[tuple[int, str, str]]) -> None:
    """In the file's own encoding (UTF-8 with a BOM when it was UTF-8: a spreadsheet then
    opens the Chinese text as it is)."""
    with path.open("w", newline="", encoding=parsed.encoding) as f:
        w = csv.writer(f)
        header = list(next(iter(parsed.rows.values()), {}).keys())
        w.writerow(["row", "field", "reason", *header])
        for line, column, reason in sorted(rejected):
            w.writerow([line, column, reason, *parsed.rows.get(line, {}).values()])
