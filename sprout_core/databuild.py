"""Build the compact public data that ships in ``data/`` from the public files, deterministically.

``python scripts/build_data.py [--source DIR] [--out DIR] [--check]`` (or :func:`main`):

* ``data/carbon/electricitymaps_hourly.npz`` — every ``<source>/carbon/<ZONE>_<YEAR>_hourly.csv``
  (Electricity Maps exports), read and validated by :mod:`sprout_core.grid`, stored as int32
  centi-g CO₂eq/kWh (rows: direct, LCA) per zone-year plus a JSON ``index`` (zone, year, zone name,
  hours, the source file's SHA-256). Exact: every export value has at most two decimals, and the build
  fails if one does not round-trip.
* ``data/reference/llama2-13b-a100.npz`` — the Sprout artifact's numbers from
  ``<source>/llama2-13b-a100`` (read by :mod:`sprout_core.refdata`): requests (task, prompt index,
  variant as small integer codes; energy kWh and time s as float64), the GPT-4 verdicts, the
  13B-vs-7B verdicts and the task-mix job counts, in the source's row order. No texts.
* ``MANIFEST.json`` next to each: the file's size and SHA-256, a SHA-256 of its decompressed content,
  and the SHA-256 of every source file.

Determinism: members are written in a fixed order with fixed zip timestamps and permissions, with
DEFLATE level 9 from the running zlib. The same zlib gives the same bytes; any zlib gives the same
content (``content_sha256``).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sprout_core import grid, refdata
from sprout_core.errors import DataFileError, MissingDataError
from sprout_core.paths import REPO_ROOT, SHIPPED_FILES, project_data_dir

FORMAT = 1
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
BUILDER = "scripts/build_data.py"


@dataclass(frozen=True)
class Built:
    """One file written by the build."""

    path: Path
    bytes: int
    sha256: str
    content_sha256: str


# ----------------------------------------------------------------------------------- npz I/O

def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    a = np.asarray(a)
    np.lib.format.write_array(buf, a if a.flags.c_contiguous else a.copy(order="C"), version=(1, 0),
                              allow_pickle=False)
    return buf.getvalue()


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """A ``.npz`` readable by ``np.load`` whose bytes depend only on the arrays (and zlib)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, a in arrays.items():
            if a.dtype.hasobject:
                raise ValueError(f"{name}: object arrays are not allowed in shipped data")
            zi = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.create_system = 3
            zi.external_attr = 0o644 << 16
            zf.writestr(zi, _npy_bytes(a), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def content_sha256(path: Path) -> str:
    """SHA-256 over the member names and decompressed ``.npy`` bytes, in file order (zlib-independent)."""
    h = hashlib.sha256()
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            h.update(info.filename.encode() + b"\0")
            h.update(zf.read(info))
    return h.hexdigest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _text(obj) -> np.ndarray:
    """A JSON document as a 0-d unicode array (no pickling needed to read it)."""
    return np.array(json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")))


# ----------------------------------------------------------------------------------- carbon

def carbon_arrays(source: Path) -> dict[str, np.ndarray]:
    """The shipped carbon members from ``<source>/carbon`` (every export, validated by :mod:`grid`)."""
    folder = source / "carbon"
    files = sorted(folder.glob("*_hourly.csv")) if folder.is_dir() else []
    if not files:
        raise MissingDataError(f"No Electricity Maps exports (<ZONE>_<YEAR>_hourly.csv) in {folder}")
    entries, members = [], {}
    for path in files:
        m = grid._FILE_RE.match(path.name)
        if not m:
            raise DataFileError(f"{path}: file name is not <ZONE>_<YEAR>_hourly.csv")
        zone, year = m.group("zone"), int(m.group("year"))
        df = grid._read_export(path, str(path))
        rows = []
        zone_name = zone
        for column in ("direct", "lca"):
            tr = grid._parse_export(df, str(path), column, zone, year, path)
            centi = np.rint(tr.ci * 100.0)
            if not np.array_equal(centi / 100.0, tr.ci):
                i = int(np.flatnonzero(centi / 100.0 != tr.ci)[0])
                raise DataFileError(f"{path}, line {i + 2}: {column} value {tr.ci[i]!r} has more than two decimals; "
                                    "the shipped format stores centi-g/kWh exactly")
            rows.append(centi.astype(np.int32))
            zone_name = tr.zone_name
        member = f"{zone}_{year}"
        members[member] = np.stack(rows)
        entries.append({"zone": zone, "year": year, "zone_name": zone_name, "member": member,
                        "hours": int(rows[0].shape[0]), "source_file": path.name,
                        "source_sha256": _sha256_file(path)})
    entries.sort(key=lambda e: (e["year"], e["zone"]))
    index = {"format": FORMAT, "unit": "centi-g CO2eq/kWh (int32; divide by 100)", "rows": ["direct", "lca"],
             "time": "row k = hour k of the year, UTC, from Jan 1 00:00", "attribution": grid.ATTRIBUTION,
             "license": "ODbL-1.0 (contents DbCL-1.0); see data/carbon/LICENSE.md", "traces": entries}
    return {"index": _text(index), **{k: members[k] for k in sorted(members)}}


# ----------------------------------------------------------------------------------- reference

def _codes(values: pd.Series, labels: list[str], what: str) -> np.ndarray:
    lookup = {v: i for i, v in enumerate(labels)}
    unknown = sorted(set(values) - set(lookup))
    if unknown:
        raise DataFileError(f"{what}: unexpected values {unknown[:5]}")
    return values.map(lookup).to_numpy(dtype=np.uint8)


def reference_arrays(source: Path) -> dict[str, np.ndarray]:
    """The shipped reference members from ``<source>/llama2-13b-a100`` (numbers only, no texts)."""
    req = refdata.requests(source)
    jud = refdata.judgments(source)
    j7 = refdata.judgments_7b(source)
    mix = refdata.task_mix(source)
    tasks = list(pd.unique(pd.concat([req["task"], jud["task"]] + ([j7["task"]] if j7 is not None else []))))
    variants = list(pd.unique(req["variant"]))
    winners = [lv for lv in refdata.LEVELS if lv in set(jud["winner"])] + \
        sorted(set(jud["winner"]) - set(refdata.LEVELS))
    out: dict[str, np.ndarray] = {
        "tasks": np.array(tasks, dtype=str), "variants": np.array(variants, dtype=str),
        "winners": np.array(winners, dtype=str),
        "requests_task": _codes(req["task"], tasks, "requests.csv task"),
        "requests_prompt_index": req["prompt_index"].to_numpy(dtype=np.int32),
        "requests_variant": _codes(req["variant"], variants, "requests.csv variant"),
        "requests_energy_kwh": req["energy_kwh"].to_numpy(dtype=np.float64),
        "requests_time_s": req["time_s"].to_numpy(dtype=np.float64),
        "judgments_task": _codes(jud["task"], tasks, "judgments.csv task"),
        "judgments_prompt_index": jud["prompt_index"].to_numpy(dtype=np.int32),
        "judgments_winner": _codes(jud["winner"], winners, "judgments.csv winner"),
    }
    if j7 is not None:
        w7 = list(pd.unique(j7["winner"]))
        out.update({"winners_7b": np.array(w7, dtype=str),
                    "judgments_7b_task": _codes(j7["task"], tasks, "judgments_13b_vs_7b.csv task"),
                    "judgments_7b_prompt_index": j7["prompt_index"].to_numpy(dtype=np.int32),
                    "judgments_7b_winner": _codes(j7["winner"], w7, "judgments_13b_vs_7b.csv winner")})
    derived = {}
    lens = _answer_length_arrays(source, jud)
    if lens is not None:
        out.update(lens)
        derived["responses.jsonl"] = _sha256_file(refdata.folder(source) / "responses.jsonl")
    if mix is not None:
        if not np.array_equal(np.round(mix), mix):
            raise DataFileError("task_mix.csv: job counts are not whole numbers")
        out["task_mix_jobs"] = mix.astype(np.int32)
    for col in ("prompt_index",):
        if int(req[col].max()) > np.iinfo(np.int32).max:
            raise DataFileError(f"requests.csv: {col} does not fit int32")
    src = refdata.folder(source)
    meta = {"format": FORMAT, "dataset": refdata.NAME, "artifact": refdata.ARTIFACT, "method": refdata.METHOD,
            "units": {"energy_kwh": "kWh per request (GPU, NVML via carbontracker)", "time_s": "s per request"},
            "sources": {name: _sha256_file(src / name) for name in refdata.SHIPPED_TABLES if (src / name).exists()},
            "license": "MIT (the artifact's); see data/reference/LICENSE"}
    if derived:
        meta["derived_from"] = derived
        meta["units"]["judgments_words"] = "whitespace words of each judged answer (L0, L1, L2); numbers only"
        meta["units"]["judgments_groups"] = "per level, the first level with the same whitespace/case-normalised text"
    return {"meta": _text(meta), **out}


def _answer_length_arrays(source: Path, jud: pd.DataFrame) -> dict[str, np.ndarray] | None:
    """Numbers derived from the judged answers (never their texts), aligned with ``judgments.csv``:
    ``judgments_words`` [n, 3] uint16 whitespace words of L0/L1/L2 and ``judgments_groups`` [n, 3] uint8
    identity groups (:func:`sprout_core.evaluate.shares.identity_groups`). ``None`` without the texts."""
    path = refdata.folder(source) / "responses.jsonl"
    if not path.exists():
        return None
    lens = refdata.lengths_from_responses(path)
    lens = jud[["task", "prompt_index"]].merge(lens, on=["task", "prompt_index"], how="left")
    words = lens[[f"words_{lv}" for lv in refdata.LEVELS]].to_numpy()
    if np.isnan(words.astype(float)).any():
        raise DataFileError(f"{path}: some judged prompts of judgments.csv have no answers there")
    if words.max() > np.iinfo(np.uint16).max:
        raise DataFileError(f"{path}: an answer has more words than uint16 holds")
    return {"judgments_words": words.astype(np.uint16),
            "judgments_groups": lens[[f"group_{lv}" for lv in refdata.LEVELS]].to_numpy().astype(np.uint8)}


# ----------------------------------------------------------------------------------- build

def _write(out_dir: Path, dataset: str, arrays: dict[str, np.ndarray], source: Path) -> Built:
    path = out_dir / SHIPPED_FILES[dataset]
    write_npz(path, arrays)
    built = Built(path, path.stat().st_size, _sha256_file(path), content_sha256(path))
    folder = source / dataset
    manifest = {"file": path.name, "bytes": built.bytes, "sha256": built.sha256,
                "content_sha256": built.content_sha256, "format": FORMAT, "builder": BUILDER,
                "zlib": zlib.ZLIB_RUNTIME_VERSION,
                "built_from": {name.name: _sha256_file(name) for name in sorted(folder.iterdir())
                               if name.is_file() and name.name in _inputs(dataset, folder)}}
    (path.parent / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return built


def _inputs(dataset: str, folder: Path) -> set[str]:
    if dataset == "carbon":
        return {p.name for p in folder.glob("*_hourly.csv")}
    return set(refdata.SHIPPED_TABLES) | {"responses.jsonl"}


def build(source: Path, out_dir: Path | None = None) -> list[Built]:
    """Build both shipped files from the public data root ``source`` into ``out_dir`` (default ``data/``)."""
    source = Path(source).expanduser()
    out_dir = Path(out_dir) if out_dir is not None else project_data_dir()
    if not source.is_dir():
        raise MissingDataError(f"No public data folder at {source} (it should hold carbon/ and llama2-13b-a100/)")
    return [_write(out_dir, "carbon", carbon_arrays(source), source),
            _write(out_dir, refdata.NAME, reference_arrays(source), source)]


def compare(built_dir: Path, committed_dir: Path | None = None) -> list[str]:
    """Differences between a fresh build in ``built_dir`` and the committed files (empty = identical).

    Content (decompressed arrays) must always match; bytes must match when the manifest's zlib is the
    running one (a different zlib may compress the same content differently).
    """
    committed_dir = Path(committed_dir) if committed_dir is not None else project_data_dir()
    problems = []
    for rel in SHIPPED_FILES.values():
        new, old = built_dir / rel, committed_dir / rel
        if not old.exists():
            problems.append(f"{old} is missing")
            continue
        if content_sha256(new) != content_sha256(old):
            problems.append(f"{rel}: content differs from a fresh build")
        old_manifest = json.loads((old.parent / "MANIFEST.json").read_text(encoding="utf-8"))
        if old_manifest.get("zlib") == zlib.ZLIB_RUNTIME_VERSION and new.read_bytes() != old.read_bytes():
            problems.append(f"{rel}: bytes differ from a fresh build with the same zlib {zlib.ZLIB_RUNTIME_VERSION}")
        new_manifest = json.loads((new.parent / "MANIFEST.json").read_text(encoding="utf-8"))
        for key in ("built_from", "content_sha256", "format"):
            if new_manifest.get(key) != old_manifest.get(key):
                problems.append(f"{rel.split('/')[0]}/MANIFEST.json: {key} differs")
    return problems


def default_source() -> Path:
    """``../shared/data`` beside the checkout, else the public data folder."""
    shared = REPO_ROOT.parent / "shared" / "data"
    if shared.is_dir():
        return shared
    from sprout_core.paths import public_data_dir

    return public_data_dir()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python scripts/build_data.py",
                                 description="Build data/carbon and data/reference from the public files.")
    ap.add_argument("--source", type=Path, default=None,
                    help="public data root holding carbon/ and llama2-13b-a100/ (default ../shared/data, "
                         "else data/external)")
    ap.add_argument("--out", type=Path, default=None, help="output root (default: the project's data/)")
    ap.add_argument("--check", action="store_true",
                    help="build into a temporary folder and compare with the committed files (exit 1 if they differ)")
    args = ap.parse_args(argv)
    source = args.source or default_source()
    try:
        if args.check:
            with tempfile.TemporaryDirectory() as tmp:
                built = build(source, Path(tmp))
                _print(built, Path(tmp))
                problems = compare(Path(tmp), args.out)
            for p in problems:
                print(f"DIFFERS: {p}", file=sys.stderr)
            print("identical to the committed files" if not problems else "the committed files are out of date")
            return 1 if problems else 0
        built = build(source, args.out)
        _print(built, args.out or project_data_dir())
        return 0
    except (MissingDataError, DataFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _print(built: list[Built], root: Path) -> None:
    print(f"zlib {zlib.ZLIB_RUNTIME_VERSION}, numpy {np.__version__}")
    for b in built:
        print(f"{b.sha256}  {b.path.relative_to(root)}  ({b.bytes:,} bytes; content {b.content_sha256[:16]}…)")
