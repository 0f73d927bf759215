"""Grid uploads that cannot hurt (issue 20, class "Class mode"): huge fields and one-line files get a clear
message (never "a bug in Sprout"), imported zone names are cleaned and cut like typed ones, and the
Optimizer page still works with an upload whose name is hostile."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from sprout_core import cli, grid
from sprout_core.errors import SproutError
from tests.test_grid_traces import HEADER, _rows
from tests.test_grid_user import two_col

pytestmark = pytest.mark.usefixtures("fresh_clone")
ROOT = Path(__file__).resolve().parents[1]


def _export(name: str, zone: str = "PL", extra: str = "") -> bytes:
    rows = _rows(zone=zone, year=2023, name="Poland")
    rows[0] = _rows(zone=zone, year=2023, n=1, name=name)[0]  # the zone name is read from the first row
    if extra:
        rows[5] = rows[5][:-1] + extra  # a huge last field on line 7
    return ("\r\n".join([HEADER, *rows]) + "\r\n").encode()


def test_a_200_kb_field_is_refused_naming_the_line():
    with pytest.raises(grid.TraceError, match=r"line 7: 2\d\d,\d\d\d characters on one line"):
        grid.add_user_trace(_export("Poland", extra="x" * 200_000), "big.csv")
    assert grid.user_traces() == []


def test_a_19_mb_one_line_file_is_refused_clearly(tmp_path, capsys):
    f = tmp_path / "oneline.csv"
    f.write_bytes(b"0," + b"9" * (19 * 1024 * 1024))
    assert cli.main(["grid", "add", str(f), "--zone", "MY-LAB", "--year", "2023"]) == 2
    err = capsys.readouterr().err
    assert "oneline.csv, line 1:" in err and "characters on one line" in err
    assert "bug in Sprout" not in err and "field limit" not in err


@pytest.mark.parametrize("field", ["hour", "value"])
def test_a_field_just_over_pythons_csv_limit_in_a_two_column_file(field):
    lines = two_col().decode().splitlines()
    a, b = lines[3].split(",")
    lines[3] = ("1" * 140_000 + "," + b) if field == "hour" else (a + "," + "1" * 140_000)
    with pytest.raises(SproutError, match="line 4"):
        grid.add_user_trace("\n".join(lines).encode(), "f.csv", zone="MY-LAB", year=2023)


def test_imported_zone_names_are_cut_and_cleaned_like_typed_ones():
    hostile = '"' + ("Zo\x07ne\x1b[31m\u202e " * 500) + '"'  # ~5,000 characters with control characters
    info = grid.add_user_trace(_export(hostile), "pl.csv")
    assert len(info.zone_name) <= grid.MAX_ZONE_NAME_CHARS
    assert all(c.isprintable() for c in info.zone_name) and "\x1b" not in info.zone_name
    assert info.zone_name.startswith("Zo ne [31m")
    listed = next(i for i in grid.list_traces()[0] if i.zone == "PL")
    assert listed.zone_name == info.zone_name
    typed = grid.add_user_trace(two_col(), "x.csv", zone="MY-LAB", year=2023, zone_name="A\nB\tC" + "d" * 200)
    assert typed.zone_name == ("A B C" + "d" * 200)[:80]
    assert grid.clean_zone_name("  \x00\x1f ") == ""


def test_a_public_folder_export_with_a_huge_zone_name_is_cut(tmp_path, monkeypatch):
    folder = tmp_path / "pub" / "carbon"
    folder.mkdir(parents=True)
    (folder / "XX_2023_hourly.csv").write_bytes(_export('"' + "N" * 200_000 + '"', zone="XX"))  # no line limit here
    monkeypatch.setenv("SPROUT_DATA_DIR", str(tmp_path / "pub"))
    info = next(i for i in grid.list_traces()[0] if i.zone == "XX")
    assert info.zone_name == "N" * grid.MAX_ZONE_NAME_CHARS


def _texts(at) -> list[str]:
    out = []
    for kind in ("markdown", "caption", "error", "warning", "info", "success", "title", "header", "subheader"):
        out += [str(e.value) for e in getattr(at, kind)]
    return out


def test_the_optimizer_page_with_a_hostile_upload_name():
    from streamlit.testing.v1 import AppTest

    hostile = '![x](http://127.0.0.1:9/beacon) <b>bold</b> [a](http://e.x) ' + "y" * 5000
    grid.add_user_trace(_export('"' + hostile + '"', zone="ZZ"), "![f](http://127.0.0.1:9/f).csv")
    at = AppTest.from_file(str(ROOT / "pages" / "optimizer.py"), default_timeout=120)
    at.run()
    assert not at.exception
    at.selectbox(key="opt.year").set_value(2023).run()
    at.selectbox(key="opt.zone").set_value("ZZ").run()
    assert not at.exception and not at.error
    texts = _texts(at)
    assert any("ZZ 2023" in t for t in texts) and any("beacon" in t for t in texts)  # the name is shown…
    hostile_shown = [t for t in texts if "beacon" in t]
    assert not any("http://" in t or re.search(r"(?<!\\)[\[<]", t) for t in hostile_shown), hostile_shown  # …inert
