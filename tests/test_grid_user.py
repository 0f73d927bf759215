"""A user's own grid data (issue 13): uploads and `grid add`, validated, stored, merged, never losing data."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sprout_core import carbon, cli, grid
from sprout_core.errors import InputError, MissingDataError
from sprout_core.paths import user_grid_dir
from tests.shipped import shipped_trace_count, shipped_zones_in
from tests.test_grid_traces import HEADER, _rows

NEW_HEADER = ("Datetime (UTC),Country,Zone name,Zone id,Carbon intensity gCO₂eq/kWh (direct),"
              "Carbon intensity gCO₂eq/kWh (Life cycle),Carbon-free energy percentage (CFE%),"
              "Renewable energy percentage (RE%),Data source,Data estimated,Data estimation method")


pytestmark = pytest.mark.usefixtures("fresh_clone")  # only the shipped traces and the user's own


def two_col(year=2023, n=None, start=0, header="hour,g_per_kwh", sep=",", value=lambda i: 100.0 + i % 24) -> bytes:
    n = n if n is not None else grid._hours_in_year(year)
    lines = ([header] if header else []) + [f"{start + i}{sep}{value(i)}" for i in range(n)]
    return ("\n".join(lines) + "\n").encode()


def export(zone="PL", year=2023, header=HEADER, eol="\r\n") -> bytes:
    return (eol.join([header, *_rows(zone=zone, year=year, name="Poland")]) + eol).encode()


def test_two_column_hours_added_listed_and_priced():
    info = grid.add_user_trace(two_col(), "lab.csv", zone="MY-LAB", year=2023, zone_name="Our lab")
    assert (info.zone, info.year, info.origin, info.zone_name) == ("MY-LAB", 2023, "user", "Our lab")
    assert "supplied by the user (lab.csv)" in info.attribution
    infos, errors = grid.list_traces()
    assert errors == [] and ("MY-LAB", 2023) in {(i.zone, i.year) for i in infos}
    assert "MY-LAB" in grid.zones_by_year()[2023] and len(grid.zones_by_year()[2023]) == shipped_zones_in(2023) + 1
    tr = grid.load_trace("MY-LAB", 2023)
    assert len(tr) == 8760 and tr.ci[0] == 100.0 and tr.ci[23] == 123.0 and tr.origin == "user"
    assert tr.timestamps[-1] == np.datetime64("2023-12-31T23:00:00")
    choice = carbon.trace_intensity("MY-LAB", 2023, hour=5)
    assert choice.ci_g_per_kwh == 105.0 and "your data" in choice.label
    with pytest.raises(grid.TraceError, match="no life-cycle"):
        grid.load_trace("MY-LAB", 2023, column="lca")
    meta = json.loads((user_grid_dir() / "MY-LAB_2023_hourly.json").read_text())
    assert meta["kind"] == "hour-intensity" and meta["original_name"] == "lab.csv"


@pytest.mark.parametrize("variant", ["one-based", "timestamps", "tz-offset", "semicolon", "no-header"])
def test_two_column_variants(variant):
    if variant == "one-based":
        data, year = two_col(start=1), 2023
    elif variant == "timestamps":
        t0 = np.datetime64("2024-01-01T00:00")
        data = ("time,ci\n" + "".join(f"{t0 + np.timedelta64(i, 'h')},{50 + i % 7}\n" for i in range(8784))).encode()
        year = None
    elif variant == "tz-offset":  # local times with an offset are converted to UTC
        t0 = np.datetime64("2023-01-01T01:00")
        data = ("time,ci\n" + "".join(f"{t0 + np.timedelta64(i, 'h')}+01:00,{50 + i % 7}\n" for i in range(8760))).encode()
        year = None
    elif variant == "semicolon":
        data, year = two_col(sep=";", header="hour;ci"), 2023
    else:
        data, year = two_col(header=None), 2023
    info = grid.add_user_trace(data, "x.csv", zone="ZZ", year=year)
    tr = grid.load_trace("ZZ", info.year)
    assert len(tr) == grid._hours_in_year(info.year) and tr.timestamps[0] == np.datetime64(f"{info.year}-01-01T00:00")
    assert tr.ci[0] in (50.0, 100.0)


def test_electricity_maps_export_both_header_spellings():
    a = grid.add_user_trace(export("PL", 2023), "PL_2023_hourly.csv")
    assert (a.zone, a.year, a.zone_name, a.attribution) == ("PL", 2023, "Poland", grid.ATTRIBUTION)
    b = grid.add_user_trace(export("PL", 2024, header=NEW_HEADER, eol="\n"), "export.csv")
    assert (b.zone, b.year) == ("PL", 2024)
    assert grid.load_trace("PL", 2024, "lca").min() == 140.0  # '(Life cycle)' column read as LCA
    assert grid.load_trace("PL", 2023).max() == 215.0


@pytest.mark.parametrize("data,kw,match", [
    (two_col(value=lambda i: "1e12" if i == 40 else 100.0), {"zone": "Q", "year": 2023},
     r"bad.csv, line 42: 'intensity' value '1e12' is implausible — above 2,000 g CO₂eq/kWh"),
    (two_col(value=lambda i: -5 if i == 3 else 100.0), {"zone": "Q", "year": 2023}, r"line 5: bad 'intensity' value '-5'"),
    (two_col(value=lambda i: "nan" if i == 3 else 100.0), {"zone": "Q", "year": 2023}, r"line 5: bad 'intensity' value 'nan'"),
    (two_col(sep=";", header="hour;ci", value=lambda i: "12,5"), {"zone": "Q", "year": 2023}, r"line 2: .*use '\.' as the decimal mark"),
    (two_col(sep=";", header=None, value=lambda i: "12,5"), {"zone": "Q", "year": 2023}, r"line 1: .*use '\.' as the decimal mark"),
    (two_col(), {"zone": "Q"}, r"the year is needed"),
    (two_col(n=100), {"zone": "Q", "year": 2023}, r"line 101: partial year — 100 of 8760"),
    (two_col(year=2024, n=8760), {"zone": "Q", "year": 2024}, r"partial year — 8760 of 8784"),
    (two_col(start=5), {"zone": "Q", "year": 2023}, r"line 2: the hours start at 5"),
    (b"hour,ci\n0,1\n1,2\n3,4\n", {"zone": "Q", "year": 2023}, r"line 4: hour 3 does not follow 1"),
    (b"hour,ci,extra\n0,1,2\n", {"zone": "Q", "year": 2023}, r"line 1: 3 columns, expected 2"),
    (b"just one column\n1\n", {"zone": "Q", "year": 2023}, r"line 1: expected two columns"),
    (b"", {"zone": "Q", "year": 2023}, r"empty file"),
    (b"\xff\xfe\x00garbage", {"zone": "Q", "year": 2023}, r"not UTF-8"),
    (b"time,ci\nyesterday,5\n", {"zone": "Q"}, r"line 2: bad time 'yesterday'"),
    (two_col(), {"year": 2023}, r"no zone id"),
    (two_col(), {"zone": "../etc", "year": 2023}, r"not a zone id"),
    (two_col(), {"zone": "Q", "year": 1800}, r"outside 1970–2100"),
    (export("PL", 2023), {"zone": "DE"}, r"export is for zone 'PL', not 'DE'"),
])
def test_bad_uploads_name_file_and_line_and_store_nothing(data, kw, match):
    with pytest.raises((grid.TraceError, InputError), match=match):
        grid.add_user_trace(data, "bad.csv", **kw)
    d = user_grid_dir(create=False)
    assert not d.exists() or not any(d.iterdir())


def test_implausible_hour_in_an_export_is_rejected_with_file_and_line():
    rows = _rows(zone="PL")
    rows[99] = rows[99].replace(",115.0,", ",1000000000000.0,", 1)  # hour 99: 100 + 5 * (99 % 24) g/kWh
    data = ("\r\n".join([HEADER, *rows]) + "\r\n").encode()
    with pytest.raises(grid.TraceError, match=r"PL_2023_hourly.csv, line 101: .*implausible"):
        grid.add_user_trace(data, "PL_2023_hourly.csv")


def test_existing_zone_year_needs_replace_and_a_bad_file_loses_nothing():
    with pytest.raises(InputError, match="DE 2023 already exists \\(shipped with Sprout\\)"):
        grid.add_user_trace(two_col(), "de.csv", zone="DE", year=2023)
    grid.add_user_trace(two_col(), "lab.csv", zone="LAB", year=2023)
    stored = (user_grid_dir() / "LAB_2023_hourly.csv").read_bytes()
    with pytest.raises(InputError, match="added by you earlier"):
        grid.add_user_trace(two_col(value=lambda i: 7.0), "lab2.csv", zone="LAB", year=2023)
    with pytest.raises(grid.TraceError):
        grid.add_user_trace(two_col(n=10), "lab3.csv", zone="LAB", year=2023, replace=True)
    assert (user_grid_dir() / "LAB_2023_hourly.csv").read_bytes() == stored
    assert grid.load_trace("LAB", 2023).ci[0] == 100.0
    grid.add_user_trace(two_col(value=lambda i: 7.0), "lab2.csv", zone="LAB", year=2023, replace=True)
    assert grid.load_trace("LAB", 2023).mean() == 7.0
    # replacing a shipped zone-year: the user's copy wins; removing it brings the shipped one back
    shipped_mean = grid.load_trace("DE", 2023).mean()
    grid.add_user_trace(two_col(), "de.csv", zone="DE", year=2023, replace=True)
    de = [i for i in grid.list_traces()[0] if (i.zone, i.year) == ("DE", 2023)]
    assert len(de) == 1 and de[0].origin == "user" and grid.load_trace("DE", 2023).ci[0] == 100.0
    assert grid.remove_user_trace("DE", 2023) and not grid.remove_user_trace("DE", 2023)
    assert grid.load_trace("DE", 2023).mean() == shipped_mean
    assert not list(user_grid_dir().glob("*.tmp"))


def test_too_large_upload_is_refused():
    with pytest.raises(InputError, match="too large"):
        grid.add_user_trace(b"0" * (grid.MAX_UPLOAD_BYTES + 1), "big.csv", zone="Q", year=2023)


def test_public_folder_exports_merge_with_shipped(fresh_clone):
    carbon_dir = fresh_clone / "carbon"
    carbon_dir.mkdir()
    (carbon_dir / "XX_2023_hourly.csv").write_bytes(export("XX", 2023))  # a new zone
    (carbon_dir / "DE_2023_hourly.csv").write_bytes(export("DE", 2023))  # differs from the shipped DE 2023
    broken = _rows(zone="GB", year=2024)[:50]
    (carbon_dir / "GB_2024_hourly.csv").write_bytes(("\n".join([HEADER, *broken]) + "\n").encode())
    infos, errors = grid.list_traces()
    by = {(i.zone, i.year): i for i in infos}
    assert by[("XX", 2023)].origin == "public" and by[("DE", 2023)].origin == "public"
    assert by[("GB", 2024)].origin == "shipped"  # a broken file never hides a usable copy
    assert len(errors) == 1 and "GB_2024_hourly.csv" in str(errors[0]) and "partial year" in str(errors[0])
    assert grid.load_trace("GB", 2024).origin == "shipped"
    assert grid.load_trace("DE", 2023).max() == 215.0
    with pytest.raises(MissingDataError, match="zones for 2023"):
        grid.load_trace("ATLANTIS", 2023)


def test_cli_grid_add_list_remove(tmp_path, capsys):
    f = tmp_path / "lab.csv"
    f.write_bytes(two_col())
    assert cli.main(["grid", "add", str(f), "--zone", "MY-LAB", "--year", "2023", "--name", "Our lab"]) == 0
    assert "added MY-LAB 2023 (Our lab): 8760 hours" in capsys.readouterr().out
    assert cli.main(["grid", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"zone": "MY-LAB", "year": 2023, "origin": "user"}.items() <= next(r for r in rows if r["zone"] == "MY-LAB").items()
    assert len(rows) == shipped_trace_count() + 1
    bad = tmp_path / "bad.csv"
    bad.write_bytes(two_col(value=lambda i: 5e9 if i == 7 else 1.0))
    assert cli.main(["grid", "add", str(bad), "--zone", "MY-LAB", "--year", "2023", "--replace"]) == 2
    err = capsys.readouterr().err
    assert "bad.csv, line 9" in err and "implausible" in err and "Traceback" not in err
    assert cli.main(["grid", "add", str(tmp_path / "nope.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert grid.load_trace("MY-LAB", 2023).ci[0] == 100.0  # still the good one
    assert cli.main(["grid", "remove", "MY-LAB", "2023"]) == 0
    assert cli.main(["grid", "remove", "MY-LAB", "2023"]) == 2
    capsys.readouterr()
    assert cli.main(["grid", "list"]) == 0
    out = capsys.readouterr().out
    assert "MY-LAB" not in out and f"{shipped_trace_count()} traces" in out
