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
:func:`prompts`        *optional texts*: ``task, prompt_index, user_prompt`` (non-commercial licences)
:func:`responses_path` *optional texts*: the judged responses file (JSONL)
=====================  =========================================================================

Numbers come from the public folder ``<public data>/llama2-13b-a100`` (``SPROUT_DATA_DIR``). Each
function raises :class:`~sprout_core.errors.MissingDataError` naming what is absent. Tables are read once
per process and cached keyed on the file's size and mtime.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from sprout_core.errors import MissingDataError
from sprout_core.paths import public_data_dir

NAME = "llama2-13b-a100"
LEVELS = ("L0", "L1", "L2")
METHOD = "reference:sprout-paper"
ARTIFACT = "boringlee24/EMNLP24_Sprout @ 95c4196def583769ddb9e2ef89abe3be8207171b (MIT)"

_LOCK = threading.Lock()
_CACHE: dict[tuple, object] = {}


def folder(data_dir: Path | None = None) -> Path:
    """``<public data>/llama2-13b-a100`` (may not exist)."""
    base = Path(data_dir) if data_dir is not None else public_data_dir()
    return base / NAME


def _public(name: str, data_dir: Path | None = None) -> Path:
    p = folder(data_dir) / name
    if not p.exists():
        raise MissingDataError(
            f"Missing reference data file: {p}. Run `bash scripts/setup.sh` next to a ../shared/data folder, "
            "or put the Sprout artifact tables there as the README ('Public data') describes."
        )
    return p


def _cached(path: Path, reader: Callable[[Path], object]):
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size, reader.__name__)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
    val = reader(path)
    with _LOCK:
        _CACHE[key] = val
    return val


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


def available(data_dir: Path | None = None) -> bool:
    """True when the reference numbers (requests and verdicts) can be read."""
    try:
        _public("requests.csv", data_dir)
        _public("judgments.csv", data_dir)
    except MissingDataError:
        return False
    return True


def texts_available(data_dir: Path | None = None) -> bool:
    """True when the optional prompt and response texts are present."""
    f = folder(data_dir)
    return (f / "prompts.csv").exists() and (f / "responses.jsonl").exists()


def requests(data_dir: Path | None = None) -> pd.DataFrame:
    """Per request: ``task, prompt_index, variant, energy_kwh, time_s`` (129,892 rows; do not modify)."""
    return _cached(_public("requests.csv", data_dir), _read_requests)


def judgments(data_dir: Path | None = None) -> pd.DataFrame:
    """Per judged prompt: ``task, prompt_index, winner`` (12,000 rows, one per (task, prompt_index))."""
    return _cached(_public("judgments.csv", data_dir), _read_verdicts)


def judgments_7b(data_dir: Path | None = None) -> pd.DataFrame | None:
    """ScienceQA 13B-vs-7B verdicts (``winner`` 13b/7b/invalid), or ``None`` when absent."""
    p = folder(data_dir) / "judgments_13b_vs_7b.csv"
    return _cached(p, _read_verdicts) if p.exists() else None


def task_mix(data_dir: Path | None = None) -> np.ndarray | None:
    """Hourly job counts of the task-mix trace (1,224 values), or ``None`` when absent."""
    p = folder(data_dir) / "task_mix.csv"
    return _cached(p, _read_task_mix) if p.exists() else None


def prompts(data_dir: Path | None = None) -> pd.DataFrame:
    """Optional texts: ``task, prompt_index, user_prompt`` of every measured prompt (MissingDataError if absent)."""
    return _cached(_public("prompts.csv", data_dir), _read_prompts)


def responses_path(data_dir: Path | None = None) -> Path:
    """Optional texts: the judged responses (JSONL; MissingDataError if absent)."""
    return _public("responses.jsonl", data_dir)
