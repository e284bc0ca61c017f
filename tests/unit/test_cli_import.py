"""Reading a households CSV for `ganshou import households` (no service needed): a
spreadsheet's export in GB18030 reads as its UTF-8 twin, and the rejected rows go back in
the file's own encoding."""

from __future__ import annotations

from pathlib import Path

import pytest

from ganshou_cli.importing import parse, write_rejected

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = (ROOT / "data/samples/households.csv").read_text(encoding="utf-8")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030", "gbk"])
def test_a_chinese_spreadsheets_csv_reads_as_its_utf8_twin(tmp_path: Path, encoding: str) -> None:
    utf8, other = tmp_path / "utf8.csv", tmp_path / f"{encoding}.csv"
    utf8.write_text(SAMPLE, encoding="utf-8")
    other.write_text(SAMPLE, encoding=encoding)
    ours, theirs = parse(utf8), parse(other)
    assert [h.SerializeToString() for _, h in theirs.households] == [h.SerializeToString() for _, h in ours.households]
    assert theirs.rejected == ours.rejected and any("弄" in h.address for _, h in theirs.households)
    rejected = tmp_path / "rejected.csv"
    write_rejected(rejected, theirs, [(5, "address", "required")])
    back = rejected.read_bytes()
    if encoding.startswith("utf-8"):
        assert back.startswith(b"\xef\xbb\xbf")  # a BOM: a spreadsheet then opens it as UTF-8
    assert "address,required" in back.decode(theirs.encoding)


def test_bytes_that_are_no_text_are_refused_with_the_file_named(tmp_path: Path) -> None:
    junk = tmp_path / "photo.csv"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x81\x30")
    with pytest.raises(ValueError, match="photo.csv is neither UTF-8 nor GB18030"):
        parse(junk)


def test_a_household_is_rejected_whole_with_every_row_of_it(tmp_path: Path) -> None:
    """Rows of one household_ref make one household: one row that cannot be read keeps the
    household back (sent without it, its mended row imported later would make a second
    household), and a household the service rejects goes back with all its rows."""
    csv_file = tmp_path / "h.csv"
    csv_file.write_text(
        "household_ref,community_id,address,segments,care_groups,name,phone,id_number,segment\n"
        "h1,zj-01,科苑路1号,local,,王一,,,local\n"
        "h2,zj-01,科苑路2号,local,,李二,,,local\n"
        "h1,zj-01,科苑路1号,local,,王三,,,martian\n"
        "h2,zj-01,科苑路2号,local,,李四,,,local\n"
        "h3,zj-01,科苑路3号,local,,张五,,,local\n", encoding="utf-8")
    parsed = parse(csv_file)
    assert [line for line, _ in parsed.households] == [3, 6]  # h2 (rows 3 and 5) and h3
    assert [len(h.residents) for _, h in parsed.households] == [2, 1]
    assert parsed.rejected == [(4, "segment", "unknown 'martian'")]
    # The service rejects h2 (reported at its first row): both its rows go back, and h1's too.
    bad = parsed.whole_households(parsed.rejected + [(3, "residents[1].id_number", "registered already")])
    assert [(line, column) for line, column, _ in bad] == [
        (2, "household_ref"), (3, "residents[1].id_number"), (4, "segment"), (5, "household_ref")]
    out = tmp_path / "rejected.csv"
    write_rejected(out, parsed, bad)
    assert [row.split(",")[3] for row in out.read_text(encoding="utf-8-sig").splitlines()[1:]] == ["h1", "h2", "h1", "h2"]
