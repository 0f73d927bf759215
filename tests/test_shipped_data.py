"""The public data that ships in data/ (issue 13): read first, identical to the public files, rebuildable,
and enough for every number-only page on a fresh clone (SPROUT_DATA_DIR pointing to an empty folder)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pandas.testing import assert_frame_equal

from sprout_core import databuild, grid, paths, refdata
from sprout_core.errors import MissingDataError
from tests.conftest import public_data_available
from tests.shipped import shipped_trace_count

ROOT = Path(__file__).resolve().parent.parent
SHARED = databuild.default_source()  # ../shared/data beside the checkout, else data/external (its link)
HAVE_PUBLIC_NUMBERS = public_data_available("llama2-13b-a100", "requests.csv") and public_data_available("carbon")
#: SOURCES.md of the public carbon folder: 22 zones for 2023, 16 for 2024
ZONES_2023 = {"AU-NSW", "AU-SA", "AU-VIC", "BR", "BR-CS", "CA-ON", "CL-SEN", "DE", "ES", "FR", "GB", "IN-WE", "JP-TK",
              "KR", "NL", "NO", "SG", "US-CAL-CISO", "US-MIDA-PJM", "US-NY-NYIS", "US-TEX-ERCO", "ZA"}
ZONES_2024 = {"AU-NSW", "AU-VIC", "BR-CS", "CA-ON", "CL-SEN", "DE", "GB", "IN-WE", "JP-TK", "KR", "SG", "US-CAL-CISO",
              "US-MIDA-PJM", "US-NY-NYIS", "US-TEX-ERCO", "ZA"}


# ----------------------------------------------------------------------------------- what ships

def test_shipped_files_are_compact_licensed_and_not_copies():
    files = [ROOT / "data" / rel for rel in paths.SHIPPED_FILES.values()]
    assert all(f.exists() for f in files)
    total = sum(f.stat().st_size for f in files) + sum((f.parent / "MANIFEST.json").stat().st_size for f in files)
    assert total < 15 * 1024 * 1024
    for folder in ("carbon", "reference"):
        text = (ROOT / "data" / folder / "README.md").read_text(encoding="utf-8")
        assert "scripts/build_data.py" in text
    carbon_lic = (ROOT / "data/carbon/LICENSE.md").read_text(encoding="utf-8")
    assert "Open Database License" in carbon_lic and "Electricity Maps" in carbon_lic and "share-alike" in carbon_lic.lower()
    ref_lic = (ROOT / "data/reference/LICENSE").read_text(encoding="utf-8")
    assert "MIT License" in ref_lic and "95c4196def583769ddb9e2ef89abe3be8207171b" in ref_lic
    # never a byte copy of a public file, and no texts
    public_shas = set(json.loads((ROOT / "data/carbon/MANIFEST.json").read_text())["built_from"].values())
    for f in files:
        assert databuild._sha256_file(f) not in public_shas
    with np.load(refdata.shipped_path()) as z:
        assert not any("prompt" == k or "text" in k or "response" in k for k in z.files)
        assert all(z[k].dtype.kind in "iufU" for k in z.files)


def test_refdata_reads_shipped_first_and_texts_stay_optional(fresh_clone):
    assert refdata.available() and not refdata.texts_available()
    assert "shipped with Sprout" in refdata.numbers_source()
    req = refdata.requests()
    assert len(req) == 129_892 and list(req.columns) == ["task", "prompt_index", "variant", "energy_kwh", "time_s"]
    assert req["prompt_index"].dtype == np.int64 and req["energy_kwh"].dtype == np.float64
    # README of the artifact: pooled L0 mean 0.3358 Wh/request
    assert req[req["variant"] == "L0"]["energy_kwh"].mean() * 1000 == pytest.approx(0.3358, abs=1e-4)
    jud = refdata.judgments()
    assert len(jud) == 12_000 and set(jud["winner"]) == {"L0", "L1", "L2"}
    j7 = refdata.judgments_7b()
    assert j7["winner"].value_counts().to_dict() == {"13b": 1138, "7b": 861, "invalid": 1}
    mix = refdata.task_mix()
    assert mix.shape == (1224,) and mix.min() == 230 and mix.max() == 7868
    with pytest.raises(MissingDataError, match="not shipped"):
        refdata.prompts()
    with pytest.raises(MissingDataError, match="responses.jsonl"):
        refdata.responses_path()
    meta = refdata.shipped_meta()
    assert meta["artifact"] == refdata.ARTIFACT and set(meta["sources"]) == set(refdata.SHIPPED_TABLES)


def test_home_data_status_counts_shipped_sets_as_present(fresh_clone):
    status = {d.name: d for d in paths.public_data_status()}
    assert status["carbon"].present and "ships with Sprout" in status["carbon"].purpose
    assert status["llama2-13b-a100"].present and "optional" in status["llama2-13b-a100"].purpose
    assert not status["prompts"].present


def test_every_shipped_zone_year_loads_on_a_fresh_clone(fresh_clone):
    infos, errors = grid.list_traces()
    assert errors == []
    assert {i.zone for i in infos if i.year == 2023} == ZONES_2023
    assert {i.zone for i in infos if i.year == 2024} == ZONES_2024
    assert {i.origin for i in infos} == {"shipped"}
    for i in infos:
        for column in ("direct", "lca"):
            tr = grid.load_trace(i.zone, i.year, column)
            assert len(tr) == grid._hours_in_year(i.year) and tr.origin == "shipped"
            assert 0 <= tr.min() and tr.max() <= grid.MAX_CI_G_PER_KWH
            assert tr.timestamps[0] == np.datetime64(f"{i.year}-01-01T00:00:00")
    # SOURCES.md: US-TEX-ERCO 2023 direct min 124.00, mean 316.51, max 494.32; NO 2023 mean 9.28
    ercot = grid.load_trace("US-TEX-ERCO", 2023)
    assert (ercot.min(), round(ercot.mean(), 2), ercot.max()) == (124.00, 316.51, 494.32)
    assert round(grid.load_trace("NO", 2023).mean(), 2) == 9.28
    assert grid.load_trace("CA-ON", 2024).zone_name == "Ontario"


def test_listing_reads_only_the_index(fresh_clone, monkeypatch):
    """Lazy: listing the zones must not decompress any trace."""
    grid._CACHE.clear()
    calls = []
    real = grid._load_shipped
    monkeypatch.setattr(grid, "_load_shipped", lambda *a, **k: calls.append(a) or real(*a, **k))
    infos, _ = grid.list_traces()
    assert len(infos) == shipped_trace_count() and calls == []
    grid.load_trace("DE", 2024)
    assert len(calls) == 1


def test_missing_shipped_file_and_public_folder_says_what_is_missing(fresh_clone, monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "project_data_dir", lambda: tmp_path / "stripped")
    assert not refdata.available()
    with pytest.raises(MissingDataError, match="git checkout data/reference"):
        refdata.requests()
    with pytest.raises(MissingDataError, match="carbon"):
        grid.list_traces()


def test_corrupt_shipped_file_is_a_clear_error(fresh_clone, monkeypatch, tmp_path):
    bad = tmp_path / "data"
    (bad / "carbon").mkdir(parents=True)
    (bad / "carbon" / "electricitymaps_hourly.npz").write_bytes(b"not a zip")
    monkeypatch.setattr(paths, "project_data_dir", lambda: bad)
    infos, errors = grid.list_traces()
    assert infos == [] and "unreadable" in str(errors[0]) and "git checkout data/carbon" in str(errors[0])


# ----------------------------------------------------------------------------------- identical and rebuildable

@pytest.mark.skipif(not HAVE_PUBLIC_NUMBERS, reason="needs the public files to compare with (../shared/data)")
def test_shipped_numbers_equal_the_public_files():
    pub = paths.public_data_dir()
    assert_frame_equal(refdata.requests(), refdata.requests(pub))
    assert_frame_equal(refdata.judgments(), refdata.judgments(pub))
    assert_frame_equal(refdata.judgments_7b(), refdata.judgments_7b(pub))
    np.testing.assert_array_equal(refdata.task_mix(), refdata.task_mix(pub))
    for i in grid.list_traces(pub)[0]:
        for column in ("direct", "lca"):
            a, b = grid.load_trace(i.zone, i.year, column), grid.load_trace(i.zone, i.year, column, data_dir=pub)
            np.testing.assert_array_equal(a.ci, b.ci)
            np.testing.assert_array_equal(a.timestamps, b.timestamps)
            assert a.zone_name == b.zone_name


@pytest.mark.skipif(not ((SHARED / "carbon").is_dir() and (SHARED / "llama2-13b-a100").is_dir()),
                    reason="the public files (../shared/data) are not beside this checkout")
def test_rebuild_from_shared_data_matches_the_committed_files(tmp_path):
    built = databuild.build(SHARED, tmp_path)
    assert [b.path.name for b in built] == ["electricitymaps_hourly.npz", "llama2-13b-a100.npz"]
    assert databuild.compare(tmp_path) == []
    for b in built:
        manifest = json.loads((b.path.parent / "MANIFEST.json").read_text())
        committed = json.loads((ROOT / "data" / b.path.parent.name / "MANIFEST.json").read_text())
        assert manifest["content_sha256"] == committed["content_sha256"] == b.content_sha256
    # the script prints a checksum per file and exits 0 when identical
    out = subprocess.run([sys.executable, str(ROOT / "scripts/build_data.py"), "--check", "--source", str(SHARED)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "identical to the committed files" in out.stdout
    assert sum(len(line.split()[0]) == 64 for line in out.stdout.splitlines() if line[:1].isalnum()) == 2


def test_build_is_deterministic_and_compare_catches_a_change(tmp_path):
    """Two builds of the same (synthetic) public files are byte-identical; a changed hour is reported."""
    src = tmp_path / "src"
    _synthetic_public(src)
    a, b = databuild.build(src, tmp_path / "a"), databuild.build(src, tmp_path / "b")
    assert [x.sha256 for x in a] == [x.sha256 for x in b]
    assert databuild.compare(tmp_path / "b", tmp_path / "a") == []
    path = src / "carbon" / "XX_2023_hourly.csv"
    path.write_text(path.read_text().replace(",101.25,", ",101.5,", 1))
    databuild.build(src, tmp_path / "c")
    problems = databuild.compare(tmp_path / "c", tmp_path / "a")
    assert any("content differs" in p for p in problems) and any("built_from" in p for p in problems)


def test_build_refuses_values_it_cannot_store_exactly(tmp_path):
    src = tmp_path / "src"
    _synthetic_public(src)
    path = src / "carbon" / "XX_2023_hourly.csv"
    path.write_text(path.read_text().replace(",101.25,", ",101.255,", 1))
    with pytest.raises(databuild.DataFileError, match="more than two decimals"):
        databuild.build(src, tmp_path / "out")


def _synthetic_public(src: Path) -> None:
    from tests.test_grid_traces import HEADER

    (src / "carbon").mkdir(parents=True)
    rows = []
    t0 = np.datetime64("2023-01-01T00:00:00", "s")
    for i in range(8760):
        ts = str(t0 + np.timedelta64(i, "h")).replace("T", " ")
        rows.append(f"{ts},Testland,Test Zone,XX,{100 + (i % 24) + 0.25},{140 + (i % 24)},50.0,40.0,src,false,")
    (src / "carbon" / "XX_2023_hourly.csv").write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    ref = src / "llama2-13b-a100"
    ref.mkdir()
    (ref / "requests.csv").write_text("task,prompt_index,variant,energy_kwh,time_s\n"
                                      + "".join(f"t{k % 2},{k},{lv},{0.0001 * (k + 1)},{1.5 + k}\n"
                                                for k in range(6) for lv in ("L0", "L1", "L2")))
    (ref / "judgments.csv").write_text("task,prompt_index,winner\n" + "".join(f"t{k % 2},{k},L{k % 3}\n" for k in range(6)))
    (ref / "task_mix.csv").write_text(",hourofyear,job_name,hour\n" + "".join(f"{k},{600 + k}.0,{300 + k},{k}.0\n"
                                                                           for k in range(30)))


@pytest.mark.skipif(not public_data_available("llama2-13b-a100", "responses.jsonl"), reason="optional texts absent")
def test_shipped_answer_lengths_equal_a_recount_of_the_texts():
    """The derived numbers (words per judged answer, identical-answer groups) equal a recount of the texts,
    row for row in judgments order; the texts themselves are not shipped."""
    from sprout_core.evaluate.reference import load_responses
    from sprout_core.evaluate.shares import identity_groups, word_count

    shipped = refdata.answer_lengths()
    rows = load_responses()
    assert list(zip(shipped["task"], shipped["prompt_index"])) == [(r["task"], r["prompt_index"]) for r in rows]
    words = np.array([[word_count(r[lv]) for lv in refdata.LEVELS] for r in rows])
    groups = identity_groups([[r[lv] for lv in refdata.LEVELS] for r in rows])
    assert np.array_equal(shipped[[f"words_{lv}" for lv in refdata.LEVELS]].to_numpy(), words)
    assert np.array_equal(shipped[[f"group_{lv}" for lv in refdata.LEVELS]].to_numpy(), groups)
    meta = refdata.shipped_meta()
    assert "responses.jsonl" in meta["derived_from"]
