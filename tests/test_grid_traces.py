"""Tests for sprout_core.grid: the Electricity Maps trace reader."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sprout_core import grid
from sprout_core.paths import MissingDataError
from tests.shipped import shipped_zones_in

HEADER = ("Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
          "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,"
          "Data Source,Data Estimated,Data Estimation Method")


def _rows(zone="XX", year=2023, n=None, name='"Test, Zone"'):
    n = n if n is not None else grid._hours_in_year(year)
    t0 = np.datetime64(f"{year}-01-01T00:00:00", "s")
    out = []
    for i in range(n):
        ts = str(t0 + np.timedelta64(i, "h")).replace("T", " ")
        direct = 100.0 + (i % 24) * 5.0
        out.append(f"{ts},Testland,{name},{zone},{direct},{direct + 40},50.0,40.0,src.example,false,")
    return out


def _write(path: Path, lines: list[str], eol="\r\n"):
    path.write_bytes((eol.join([HEADER, *lines]) + eol).encode("utf-8"))
    return path


@pytest.fixture
def carbon_dir(tmp_path):
    d = tmp_path / "carbon"
    d.mkdir()
    return d


@pytest.mark.parametrize("eol", ["\r\n", "\n"])
def test_good_file_crlf_and_lf(carbon_dir, eol):
    _write(carbon_dir / "XX_2023_hourly.csv", _rows(), eol)
    tr = grid.load_trace("XX", 2023, data_dir=carbon_dir.parent)
    assert len(tr) == 8760
    assert tr.zone == "XX" and tr.year == 2023 and tr.zone_name == "Test, Zone"
    assert tr.timestamps[0] == np.datetime64("2023-01-01T00:00:00")
    assert tr.timestamps[-1] == np.datetime64("2023-12-31T23:00:00")
    assert tr.min() == 100.0 and tr.max() == 215.0
    assert tr.mean() == pytest.approx(np.mean(100.0 + (np.arange(24)) * 5.0))
    lca = grid.load_trace("XX", 2023, column="lca", data_dir=carbon_dir.parent)
    assert lca.min() == 140.0


def test_leap_year_needs_8784_hours(carbon_dir):
    _write(carbon_dir / "XX_2024_hourly.csv", _rows(year=2024))
    assert len(grid.load_trace("XX", 2024, data_dir=carbon_dir.parent)) == 8784
    _write(carbon_dir / "YY_2024_hourly.csv", _rows(zone="YY", year=2024, n=8760))
    with pytest.raises(grid.TraceError, match=r"partial year — 8760 of 8784"):
        grid.load_trace("YY", 2024, data_dir=carbon_dir.parent)


def test_bad_number_names_file_and_line(carbon_dir):
    rows = _rows()
    # rows[9] is data row 10 -> file line 11
    parts = _rows()[9].split(",")
    parts[5] = "n/a"  # direct column (index 5 because zone name is quoted and holds a comma)
    rows[9] = ",".join(parts)
    p = _write(carbon_dir / "XX_2023_hourly.csv", rows)
    with pytest.raises(grid.TraceError) as ei:
        grid.load_trace("XX", 2023, data_dir=carbon_dir.parent)
    assert str(p) in str(ei.value) and "line 11" in str(ei.value)


def test_truncated_last_row_is_reported(carbon_dir):
    rows = _rows()
    rows[-1] = rows[-1][:25]  # cut mid-row: no CI value
    p = _write(carbon_dir / "XX_2023_hourly.csv", rows, eol="\n")
    with pytest.raises(grid.TraceError) as ei:
        grid.load_trace("XX", 2023, data_dir=carbon_dir.parent)
    assert str(p) in str(ei.value) and "line 8761" in str(ei.value)


def test_partial_year_and_gap(carbon_dir):
    _write(carbon_dir / "XX_2023_hourly.csv", _rows(n=1000))
    with pytest.raises(grid.TraceError, match=r"line 1001: partial year"):
        grid.load_trace("XX", 2023, data_dir=carbon_dir.parent)
    rows = _rows(zone="YY")
    del rows[50]
    _write(carbon_dir / "YY_2023_hourly.csv", rows)
    with pytest.raises(grid.TraceError, match=r"line 52: timestamp 2023-01-03T03:00:00 does not follow"):
        grid.load_trace("YY", 2023, data_dir=carbon_dir.parent)


def test_bad_header_and_bad_timestamp(carbon_dir):
    p = carbon_dir / "XX_2023_hourly.csv"
    p.write_text("time,ci\n2023-01-01 00:00:00,5\n")
    with pytest.raises(grid.TraceError, match="line 1: header lacks"):
        grid.load_trace("XX", 2023, data_dir=carbon_dir.parent)
    rows = _rows()
    rows[3] = "yesterday" + rows[3][19:]
    _write(p, rows)
    with pytest.raises(grid.TraceError, match=r"line 5: bad 'Datetime \(UTC\)' value 'yesterday'"):
        grid.load_trace("XX", 2023, data_dir=carbon_dir.parent)


def test_wrong_zone_row(carbon_dir):
    rows = _rows()
    rows[7] = rows[7].replace(",XX,", ",ZZ,")
    _write(carbon_dir / "XX_2023_hourly.csv", rows)
    with pytest.raises(grid.TraceError, match=r"line 9: Zone Id 'ZZ'"):
        grid.load_trace("XX", 2023, data_dir=carbon_dir.parent)


@pytest.mark.parametrize("value,col", [("1000000000000", 4), ("2500.5", 4), ("1e12", 5)])
def test_implausible_hour_is_rejected_naming_file_and_line(carbon_dir, value, col):
    """Above grid.MAX_CI_G_PER_KWH (2,000 g/kWh, more than any power plant emits) is a unit or data error."""
    rows = _rows()
    parts = rows[1233].split(",")
    parts[col + 1] = value  # +1: the quoted zone name holds a comma
    rows[1233] = ",".join(parts)
    p = _write(carbon_dir / "XX_2023_hourly.csv", rows)
    column = "direct" if col == 4 else "lca"
    with pytest.raises(grid.TraceError, match=r"line 1235: .*implausible — above 2,000 g CO₂eq/kWh") as ei:
        grid.load_trace("XX", 2023, column=column, data_dir=carbon_dir.parent)
    assert str(p) in str(ei.value) and value in str(ei.value)
    infos, errors = grid.list_traces(carbon_dir.parent)
    assert (infos == []) == (column == "direct")
    assert grid.MAX_CI_G_PER_KWH == 2000.0 and not errors or "implausible" in str(errors[0])


def test_newer_export_header_spelling(carbon_dir):
    new = HEADER.replace("Zone Name", "Zone name").replace("Zone Id", "Zone id").replace("Intensity", "intensity") \
        .replace("(LCA)", "(Life cycle)")
    (carbon_dir / "XX_2023_hourly.csv").write_text("\n".join([new, *_rows()]) + "\n", encoding="utf-8")
    assert grid.load_trace("XX", 2023, "lca", data_dir=carbon_dir.parent).min() == 140.0
    assert grid.load_trace("XX", 2023, data_dir=carbon_dir.parent).zone_name == "Test, Zone"


def test_list_traces_reports_broken_files_without_failing(carbon_dir):
    _write(carbon_dir / "AA_2023_hourly.csv", _rows(zone="AA"))
    _write(carbon_dir / "BB_2024_hourly.csv", _rows(zone="BB", year=2024))
    _write(carbon_dir / "CC_2023_hourly.csv", _rows(zone="CC", n=10))
    (carbon_dir / "notes.csv").write_text("a,b\n1,2\n")
    infos, errors = grid.list_traces(carbon_dir.parent)
    assert [(i.zone, i.year) for i in infos] == [("AA", 2023), ("BB", 2024)]
    assert infos[0].zone_name == "Test, Zone"
    msgs = sorted(str(e) for e in errors)
    assert len(msgs) == 2
    assert any("CC_2023_hourly.csv" in m and "partial year" in m for m in msgs)
    assert any("notes.csv" in m for m in msgs)
    assert grid.zones_by_year(carbon_dir.parent) == {2023: ["AA"], 2024: ["BB"]}


def test_missing_folder_and_file(tmp_path, carbon_dir):
    with pytest.raises(MissingDataError):
        grid.list_traces(tmp_path / "nowhere")
    with pytest.raises(MissingDataError, match="QQ"):
        grid.load_trace("QQ", 2023, data_dir=carbon_dir.parent)


def test_cache_returns_same_object_and_sees_edits(carbon_dir):
    p = _write(carbon_dir / "XX_2023_hourly.csv", _rows())
    a = grid.load_trace("XX", 2023, data_dir=carbon_dir.parent)
    assert grid.load_trace("XX", 2023, data_dir=carbon_dir.parent) is a
    assert not a.ci.flags.writeable
    rows = _rows()
    rows.pop()
    _write(p, rows)  # file changed (size differs): re-read and now partial
    with pytest.raises(grid.TraceError):
        grid.load_trace("XX", 2023, data_dir=carbon_dir.parent)


def test_real_files():
    """The shipped traces (plus any public-folder exports): the zones of ../shared/data/carbon/SOURCES.md."""
    infos, errors = grid.list_traces()
    assert errors == []
    years = {}
    for i in infos:
        years.setdefault(i.year, []).append(i.zone)
    assert len(years[2023]) == shipped_zones_in(2023) and len(years[2024]) == shipped_zones_in(2024)
    tr = grid.load_trace("US-TEX-ERCO", 2023)
    assert len(tr) == 8760
    # SOURCES.md: US-TEX-ERCO 2023 direct min 124.00, mean 316.51, max 494.32
    assert tr.min() == pytest.approx(124.00, abs=0.01)
    assert tr.mean() == pytest.approx(316.51, abs=0.01)
    assert tr.max() == pytest.approx(494.32, abs=0.01)
    assert grid.load_trace("DE", 2024).timestamps[-1] == np.datetime64("2024-12-31T23:00:00")
