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
