"""The one reader of the Sprout paper's reference data (Llama-2-13B-chat on one A100, GPT-4 verdicts).

Every module that needs the artifact's numbers or texts reads them here, never from the files directly:

=====================  =========================================================================
function               returns
=====================  =========================================================================
:func:`requests`       per request: ``task, prompt_index, variant, energy_kwh, time_s`` (variant
                       L0/L1/L2/7b; kWh GPU energy and wall seconds per request, batch size 1)
:func:`judgments`      per judged prompt: ``task, prompt_index, winner`` (L0/L1/L2; GPT-4 best-of-3)
:func:`judgments_7b`   ScienceQA 13B-vs-7B pairwise verdicts: ``task, prompt_index, winner`` (13b/7b/invalid)
:func:`task_mix`       the hourly job-count trace the paper's simulator draws task mixes from
:func:`answer_lengths` per judged prompt: whitespace words of the L0/L1/L2 answers and which of them
                       are identical (numbers derived from the texts, shipped; the texts are not)
:func:`prompts`        *optional texts*: ``task, prompt_index, user_prompt`` (non-commercial licences)
:func:`responses_path` *optional texts*: the judged responses file (JSONL)
=====================  =========================================================================

Where the numbers come from (:func:`numbers_source` says which, in words):

1. **shipped** — ``data/reference/llama2-13b-a100.npz``, committed with Sprout (MIT, the artifact's
   licence): requests, verdicts, 13B-vs-7B verdicts and the task-mix trace, built by
   ``scripts/build_data.py`` from the public tables and identical to them (same rows, order, dtypes);
2. **public folder** — ``<public data>/llama2-13b-a100/*.csv`` (``SPROUT_DATA_DIR``, default
   ``data/external``), used when the shipped file is absent, or always when ``data_dir`` is given.

The optional texts (prompts, judged responses; non-commercial licences) are never shipped: they are
read from the public folder only. Each function raises :class:`~sprout_core.errors.MissingDataError`
naming what is absent. Tables are read once per process and cached keyed on the file's size and mtime.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from sprout_core.cache import KeyedCache
from sprout_core.errors import DataFileError, MissingDataError
from sprout_core.paths import SHIPPED_FILES, public_data_dir, shipped_file

NAME = "llama2-13b-a100"
LEVELS = ("L0", "L1", "L2")
METHOD = "reference:sprout-paper"
ARTIFACT = "boringlee24/EMNLP24_Sprout @ 95c4196def583769ddb9e2ef89abe3be8207171b (MIT)"
#: the public tables the shipped file holds (file name -> what)
SHIPPED_TABLES = {
    "requests.csv": "per-request energy and time",
    "judgments.csv": "GPT-4 best-of-3 verdicts",
    "judgments_13b_vs_7b.csv": "ScienceQA 13B-vs-7B verdicts",
    "task_mix.csv": "task-mix trace (job counts)",
}

_CACHE: KeyedCache = KeyedCache("reference tables")


def folder(data_dir: Path | None = None) -> Path:
    """``<public data>/llama2-13b-a100`` (may not exist)."""
    base = Path(data_dir) if data_dir is not None else public_data_dir()
    return base / NAME


def _public(name: str, data_dir: Path | None = None) -> Path:
    p = folder(data_dir) / name
    if not p.exists():
        if name in ("prompts.csv", "responses.jsonl"):
            raise MissingDataError(
                f"The optional texts are not here: {p} is absent. Prompt and answer texts are not shipped "
                "(their datasets are under non-commercial licences); to see them, put prompts.csv and "
                f"responses.jsonl into {folder(data_dir)} (README, 'Public data')."
            )
        raise MissingDataError(
            f"Missing reference data file: {p} (and no shipped copy at {shipped_path()}). Restore data/reference "
            "with `git checkout data/reference`, or put the Sprout artifact tables there as the README "
            "('Public data') describes."
        )
    return p


def _cached(path: Path, reader: Callable[[Path], object]):
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size, reader.__name__)
    return _CACHE.get(key, lambda: reader(path))


def _read_requests(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, dtype={"task": str, "variant": str, "prompt_index": np.int64,
                                  "energy_kwh": np.float64, "time_s": np.float64})
    return df[["task", "prompt_index", "variant", "energy_kwh", "time_s"]]


def _read_verdicts(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, dtype={"task": str, "prompt_index": np.int64, "winner": str})
    return df[["task", "prompt_index", "winner"]]


def _read_task_mix(path: Path) -> np.ndarray:
    return pd.read_csv(path)["job_name"].to_numpy(dtype=float)


def _read_prompts(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, dtype={"task": str, "prompt_index": np.int64, "user_prompt": str}, keep_default_na=False)
    return df[["task", "prompt_index", "user_prompt"]]


# ----------------------------------------------------------------------------------- shipped (npz)

def shipped_path() -> Path:
    """``data/reference/llama2-13b-a100.npz`` (committed; may be absent in a stripped copy)."""
    return shipped_file(NAME)


def _use_shipped(data_dir: Path | None) -> bool:
    return data_dir is None and shipped_path().exists()


def _read_shipped(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataFileError(f"{path}: the shipped reference data is unreadable ({exc}); restore it with "
                            "`git checkout data/reference` or rebuild it with `python scripts/build_data.py`") from exc


def _shipped() -> dict[str, np.ndarray]:
    return _cached(shipped_path(), _read_shipped)


def _labels(labels: np.ndarray, codes: np.ndarray) -> pd.Series:
    """``labels[codes]`` as a string column of the same dtype ``pd.read_csv(dtype=str)`` gives."""
    return pd.Series(pd.array(labels.tolist(), dtype=str).take(codes.astype(np.intp)))


def _codes(arrs: dict, prefix: str, labels: str, n_cols: tuple[str, ...]) -> pd.DataFrame:
    """A verdict-shaped table from the shipped arrays: ``task, prompt_index, <n_cols…>``."""
    out = {"task": _labels(arrs["tasks"], arrs[f"{prefix}_task"]),
           "prompt_index": arrs[f"{prefix}_prompt_index"].astype(np.int64)}
    for col in n_cols:
        out[col] = _labels(arrs[labels], arrs[f"{prefix}_{col}"])
    return pd.DataFrame(out)


def _shipped_requests(_: Path) -> pd.DataFrame:
    a = _shipped()
    df = _codes(a, "requests", "variants", ())
    df["variant"] = _labels(a["variants"], a["requests_variant"])
    df["energy_kwh"] = a["requests_energy_kwh"].astype(np.float64)
    df["time_s"] = a["requests_time_s"].astype(np.float64)
    return df[["task", "prompt_index", "variant", "energy_kwh", "time_s"]]


def _shipped_judgments(_: Path) -> pd.DataFrame:
    return _codes(_shipped(), "judgments", "winners", ("winner",))


def _shipped_judgments_7b(_: Path) -> pd.DataFrame:
    return _codes(_shipped(), "judgments_7b", "winners_7b", ("winner",))


def _shipped_task_mix(_: Path) -> np.ndarray:
    return _shipped()["task_mix_jobs"].astype(float)


def shipped_meta() -> dict | None:
    """The shipped file's provenance (artifact commit, source checksums), or ``None`` when absent."""
    if not shipped_path().exists():
        return None
    return json.loads(str(_shipped()["meta"][()]))


def numbers_source(data_dir: Path | None = None) -> str:
    """Where :func:`requests` / :func:`judgments` read from, in words (for captions and the CLI)."""
    if _use_shipped(data_dir):
        return f"shipped with Sprout (data/{SHIPPED_FILES[NAME]}, from {ARTIFACT})"
    return f"public data folder ({folder(data_dir)})"


# ----------------------------------------------------------------------------------- API

def available(data_dir: Path | None = None) -> bool:
    """True when the reference numbers (requests and verdicts) can be read (shipped or public folder)."""
    if _use_shipped(data_dir):
        return True
    try:
        _public("requests.csv", data_dir)
        _public("judgments.csv", data_dir)
    except MissingDataError:
        return False
    return True


def texts_available(data_dir: Path | None = None) -> bool:
    """True when the optional prompt and response texts are present (public folder only; never shipped)."""
    f = folder(data_dir)
    return (f / "prompts.csv").exists() and (f / "responses.jsonl").exists()


def requests(data_dir: Path | None = None) -> pd.DataFrame:
    """Per request: ``task, prompt_index, variant, energy_kwh, time_s`` (129,892 rows; do not modify)."""
    if _use_shipped(data_dir):
        return _cached(shipped_path(), _shipped_requests)
    return _cached(_public("requests.csv", data_dir), _read_requests)


def judgments(data_dir: Path | None = None) -> pd.DataFrame:
    """Per judged prompt: ``task, prompt_index, winner`` (12,000 rows, one per (task, prompt_index))."""
    if _use_shipped(data_dir):
        return _cached(shipped_path(), _shipped_judgments)
    return _cached(_public("judgments.csv", data_dir), _read_verdicts)


def judgments_7b(data_dir: Path | None = None) -> pd.DataFrame | None:
    """ScienceQA 13B-vs-7B verdicts (``winner`` 13b/7b/invalid), or ``None`` when absent."""
    if _use_shipped(data_dir) and "judgments_7b_task" in _shipped():
        return _cached(shipped_path(), _shipped_judgments_7b)
    p = folder(data_dir) / "judgments_13b_vs_7b.csv"
    return _cached(p, _read_verdicts) if p.exists() else None


def task_mix(data_dir: Path | None = None) -> np.ndarray | None:
    """Hourly job counts of the task-mix trace (1,224 values), or ``None`` when absent."""
    if _use_shipped(data_dir) and "task_mix_jobs" in _shipped():
        return _cached(shipped_path(), _shipped_task_mix)
    p = folder(data_dir) / "task_mix.csv"
    return _cached(p, _read_task_mix) if p.exists() else None


def _length_columns(words: np.ndarray, groups: np.ndarray) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for i, lv in enumerate(LEVELS):
        out[f"words_{lv}"] = words[:, i].astype(np.int64)
    for i, lv in enumerate(LEVELS):
        out[f"group_{lv}"] = groups[:, i].astype(np.int64)
    return out


def lengths_from_responses(path: Path) -> pd.DataFrame:
    """``task, prompt_index, words_L0.., group_L0..`` computed from a judged-responses JSONL file."""
    from sprout_core.evaluate.shares import identity_groups, word_count

    keys, texts = [], []
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                keys.append((r["task"], int(r["prompt_index"])))
                texts.append([r.get(lv) or "" for lv in LEVELS])
    words = np.array([[word_count(t) for t in row] for row in texts], dtype=np.int64).reshape(-1, len(LEVELS))
    groups = identity_groups(texts) if texts else np.zeros((0, len(LEVELS)), np.int64)
    df = pd.DataFrame({"task": pd.array([k[0] for k in keys], dtype=str),
                       "prompt_index": np.array([k[1] for k in keys], dtype=np.int64)})
    for k, v in _length_columns(words, groups).items():
        df[k] = v
    return df


def _shipped_lengths(_: Path) -> pd.DataFrame:
    a = _shipped()
    df = _codes(a, "judgments", "winners", ())
    for k, v in _length_columns(a["judgments_words"], a["judgments_groups"]).items():
        df[k] = v
    return df


def answer_lengths(data_dir: Path | None = None) -> pd.DataFrame | None:
    """Per judged prompt: ``task, prompt_index, words_L0, words_L1, words_L2, group_L0, group_L1, group_L2``.

    ``words_*``: whitespace words of each level's judged answer; ``group_*``: the first level whose
    answer is the same text after normalising whitespace and case (``[0, 1, 1]`` = L1 and L2 identical).
    Read from the shipped numbers, else computed from the optional texts; ``None`` when neither is here.
    """
    if _use_shipped(data_dir) and "judgments_words" in _shipped():
        return _cached(shipped_path(), _shipped_lengths)
    p = folder(data_dir) / "responses.jsonl"
    return _cached(p, lengths_from_responses) if p.exists() else None


def prompts(data_dir: Path | None = None) -> pd.DataFrame:
    """Optional texts: ``task, prompt_index, user_prompt`` of every measured prompt (MissingDataError if absent)."""
    return _cached(_public("prompts.csv", data_dir), _read_prompts)


def responses_path(data_dir: Path | None = None) -> Path:
    """Optional texts: the judged responses (JSONL; MissingDataError if absent)."""
    return _public("responses.jsonl", data_dir)
