"""Prompt sets for quality evaluation: the starter set, public sets, user uploads, sampling.

A prompt set is a list of :class:`PromptItem`. Sets are found by name (``starter``, ``mt-bench``,
``vicuna-bench``, ``gsm8k``, ``alpaca-eval``) or by a path to a JSONL/CSV file with a ``prompt``
column (optional ``reference``, ``category``, ``id``). Readers keep the good rows and report the
bad ones (row number and reason) in a :class:`PromptSet`.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from sprout_core.errors import DataFileError, InputError, MissingDataError
from sprout_core.paths import project_data_dir, public_file, state_dir


@dataclass(frozen=True)
class PromptItem:
    """One prompt to evaluate.

    ``reference`` is the single right answer where there is one (a number, a letter, a short fact),
    else ``None``. ``category`` is the task used for per-task quality.
    """

    id: str
    prompt: str
    category: str = "general"
    reference: str | None = None
    source: str = ""


@dataclass(frozen=True)
class RowError:
    """A row a reader skipped: 1-based row (line) number and why."""

    row: int
    reason: str


@dataclass
class PromptSet:
    """The good rows of a prompt file, the bad rows reported, and where it came from."""

    name: str
    items: list[PromptItem]
    errors: list[RowError] = field(default_factory=list)
    license: str = ""

    def __len__(self) -> int:
        return len(self.items)

    def categories(self) -> dict[str, int]:
        """Count of prompts per category."""
        out: dict[str, int] = defaultdict(int)
        for it in self.items:
            out[it.category] += 1
        return dict(out)


# ---------------------------------------------------------------- generic rows → items

def _clean(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN
        return None
    s = str(value).strip()
    return s or None


def _is_text(value) -> bool:
    """False for a string that cannot be UTF-8 (unpaired surrogates); True for anything else."""
    if not isinstance(value, str):
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def rows_to_set(name: str, rows: Iterable[tuple[int, object]], source: str) -> PromptSet:
    """Turn ``(row_number, row)`` pairs (dict rows, or an error string) into a :class:`PromptSet`.

    A row is good when it is a mapping with a non-empty text ``prompt``; ``reference``,
    ``category`` and ``id`` are optional. Duplicate ids are reported and skipped.
    """
    items: list[PromptItem] = []
    errors: list[RowError] = []
    seen: set[str] = set()
    for rowno, row in rows:
        if isinstance(row, str):
            errors.append(RowError(rowno, row))
            continue
        if not isinstance(row, dict):
            errors.append(RowError(rowno, "not an object with a 'prompt' field"))
            continue
        raw_prompt = row.get("prompt")
        if raw_prompt is not None and not isinstance(raw_prompt, (str, int, float)):
            errors.append(RowError(rowno, "'prompt' is not text"))
            continue
        prompt = _clean(raw_prompt)
        if not prompt:
            errors.append(RowError(rowno, "missing or empty 'prompt'"))
            continue
        bad = next((k for k in ("prompt", "reference", "category", "id") if not _is_text(row.get(k))), None)
        if bad:
            errors.append(RowError(rowno, f"'{bad}' is not valid text (an unpaired UTF-16 surrogate, e.g. from a "
                                          "\\udXXX escape or a file that was not UTF-8)"))
            continue
        pid = _clean(row.get("id")) or f"{source or name}-{rowno}"
        if pid in seen:
            errors.append(RowError(rowno, f"duplicate id {pid!r}"))
            continue
        seen.add(pid)
        items.append(
            PromptItem(
                id=pid,
                prompt=prompt,
                category=_clean(row.get("category")) or "general",
                reference=_clean(row.get("reference")),
                source=source or name,
            )
        )
    return PromptSet(name=name, items=items, errors=errors)


def _jsonl_rows(text: str) -> Iterable[tuple[int, object]]:
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield i, json.loads(line)
        except json.JSONDecodeError as exc:
            yield i, f"not valid JSON ({exc.msg})"


def _csv_rows(text: str) -> Iterable[tuple[int, object]]:
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "prompt" not in [f.strip() for f in reader.fieldnames]:
        yield 1, f"the header has no 'prompt' column (found: {', '.join(reader.fieldnames or []) or 'nothing'})"
        return
    for i, row in enumerate(reader, start=2):  # row 1 is the header
        row = {(k or "").strip(): v for k, v in row.items()}
        if None in row or "" in row:
            yield i, "more fields than the header has"
            continue
        yield i, row


def parse_upload(data: bytes | str, filename: str) -> PromptSet:
    """Read a user's JSONL or CSV prompt file (by extension; ``.json`` = JSONL or a JSON array).

    Never raises on content: bad rows are reported in ``errors``; a file that cannot be read at all
    gives an empty set with one error at row 0.
    """
    name = Path(filename).stem or "upload"
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            return PromptSet(name, [], [RowError(0, "the file is not UTF-8 text")])
    else:
        text = data
    ext = Path(filename).suffix.lower()
    if ext == ".csv":
        return rows_to_set(name, _csv_rows(text), name)
    if ext in (".jsonl", ".json", ".ndjson"):
        stripped = text.lstrip()
        if stripped.startswith("["):
            try:
                arr = json.loads(stripped)
            except json.JSONDecodeError as exc:
                return PromptSet(name, [], [RowError(0, f"not valid JSON ({exc.msg})")])
            return rows_to_set(name, ((i, r) for i, r in enumerate(arr, start=1)), name)
        return rows_to_set(name, _jsonl_rows(text), name)
    return PromptSet(name, [], [RowError(0, f"unsupported file type {ext or '(none)'}: use .jsonl or .csv")])


def save_upload(filename: str, items: Sequence[PromptItem], folder: Path | None = None) -> Path:
    """Keep an uploaded prompt set in the state folder (``uploads/``, or ``folder``: a class-mode visitor's
    own, ``ui.visitor_folder("uploads")``) as JSONL and return its path.

    The file name carries a digest of the content, so a changed upload is a new file (and so a new run)
    and never overwrites the file an earlier run was made from. ``OSError`` when it cannot be written."""
    body = "".join(json.dumps({"id": it.id, "prompt": it.prompt, "category": it.category, "reference": it.reference},
                              ensure_ascii=False) + "\n" for it in items)
    digest = hashlib.sha1(body.encode("utf-8")).hexdigest()[:10]
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(filename).stem)[:60].strip("_") or "upload"
    folder = Path(folder) if folder is not None else state_dir() / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}-{digest}.jsonl"
    if not path.exists():
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(body, encoding="utf-8")
        tmp.replace(path)
    return path


# ---------------------------------------------------------------- public sets

_GSM8K_ANSWER = re.compile(r"####\s*([-+]?[\d,]*\.?\d+)")


def gsm8k_final_number(solution: str) -> str | None:
    """The final number after ``####`` in a GSM8K worked solution (commas removed), or None."""
    m = _GSM8K_ANSWER.search(solution or "")
    return m.group(1).replace(",", "") if m else None


def _read_public(*parts: str) -> str:
    return public_file(*parts).read_text(encoding="utf-8")


def _load_fastchat(file: str, name: str, id_prefix: str) -> PromptSet:
    """First turns of a FastChat question file (``question_id``, ``category``, ``turns``), Apache-2.0."""
    rows = []
    for i, r in _jsonl_rows(_read_public("prompts", file)):
        if isinstance(r, dict):
            turns = r.get("turns") or []
            r = {"id": f"{id_prefix}-{r.get('question_id')}", "prompt": turns[0] if turns else None, "category": r.get("category")}
        rows.append((i, r))
    s = rows_to_set(name, rows, name)
    s.license = "Apache-2.0 (lm-sys/FastChat)"
    return s


def load_mt_bench() -> PromptSet:
    """MT-Bench first turns (80, Apache-2.0); math/reasoning/coding have no exact reference here."""
    return _load_fastchat("mt_bench_questions.jsonl", "mt-bench", "mt-bench")


def load_vicuna_bench() -> PromptSet:
    """Vicuna-bench questions (80, single turn, Apache-2.0)."""
    return _load_fastchat("vicuna_bench_questions.jsonl", "vicuna-bench", "vicuna")


def load_gsm8k() -> PromptSet:
    """GSM8K test split (1,319, MIT), reference = the final number of the worked solution."""
    rows = []
    for i, r in _jsonl_rows(_read_public("prompts", "gsm8k_test.jsonl")):
        if isinstance(r, dict):
            ref = gsm8k_final_number(r.get("answer", ""))
            r = {"id": f"gsm8k-{i}", "prompt": r.get("question"), "category": "math", "reference": ref}
        rows.append((i, r))
    s = rows_to_set("gsm8k", rows, "gsm8k")
    s.license = "MIT (openai/grade-school-math)"
    return s


def load_alpaca_eval() -> PromptSet:
    """AlpacaEval instructions (805, CC BY-NC 4.0: non-commercial); category = the sub-dataset."""
    arr = json.loads(_read_public("prompts", "alpaca_eval_805.json"))
    rows = []
    for i, r in enumerate(arr, start=1):
        if isinstance(r, dict):
            r = {"id": f"alpaca-eval-{i}", "prompt": r.get("instruction"), "category": r.get("dataset") or "alpaca-eval"}
        rows.append((i, r))
    s = rows_to_set("alpaca-eval", rows, "alpaca-eval")
    s.license = "CC BY-NC 4.0 (AlpacaEval data, non-commercial)"
    return s


def load_starter() -> PromptSet:
    """The project's own starter set (``data/prompts/starter.jsonl``)."""
    path = project_data_dir() / "prompts" / "starter.jsonl"
    s = rows_to_set("starter", _jsonl_rows(path.read_text(encoding="utf-8")), "starter")
    s.license = "Sprout project"
    return s


#: named prompt sets → loader
PROMPT_SETS: dict[str, Callable[[], PromptSet]] = {
    "starter": load_starter,
    "mt-bench": load_mt_bench,
    "vicuna-bench": load_vicuna_bench,
    "gsm8k": load_gsm8k,
    "alpaca-eval": load_alpaca_eval,
}


def load_prompt_set(name_or_path: str) -> PromptSet:
    """A named set (see :data:`PROMPT_SETS`) or a JSONL/CSV file path.

    Raises :class:`~sprout_core.errors.MissingDataError` (a ``FileNotFoundError``) when a public set's file
    or the given path is absent, :class:`~sprout_core.errors.DataFileError` (a ``ValueError``) when the file
    cannot be read as prompts, :class:`~sprout_core.errors.InputError` for a name that is not text.
    """
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise InputError(f"No prompt set given; named sets: {', '.join(PROMPT_SETS)}, or a .jsonl/.csv path")
    if not _is_text(name_or_path) or "\x00" in name_or_path:
        raise InputError("The prompt set name or path is not valid text")
    key = name_or_path.strip().lower().replace("_", "-")
    if key in PROMPT_SETS:
        return PROMPT_SETS[key]()
    p = Path(name_or_path).expanduser()
    try:
        if p.is_file():
            data = p.read_bytes()
        elif p.is_dir():
            raise DataFileError(f"{p} is a folder; give a .jsonl or .csv file with a 'prompt' column")
        else:
            data = None
    except OSError as exc:
        raise DataFileError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    if data is not None:
        s = parse_upload(data, p.name)
        if not s.items and s.errors and s.errors[0].row == 0:
            raise DataFileError(f"{p}: {s.errors[0].reason}")
        return s
    raise MissingDataError(
        f"No prompt set named {name_or_path!r} and no such file. Named sets: {', '.join(PROMPT_SETS)}; "
        "or give a path to a .jsonl/.csv file with a 'prompt' column."
    )


# ---------------------------------------------------------------- sampling

def sample_stratified(items: Sequence[PromptItem], n: int, seed: int = 0) -> list[PromptItem]:
    """``n`` prompts drawn with ``seed``, spread over categories as evenly as they allow.

    Each category gets ``n // k`` (k categories, round-robin for the remainder, in a seeded order);
    a category with too few prompts gives its share to the others. ``n >= len(items)`` returns all
    items. The result keeps the input's order, so it is stable for a given seed.
    """
    if n <= 0:
        return []
    if n >= len(items):
        return list(items)
    rng = random.Random(seed)
    by_cat: dict[str, list[int]] = defaultdict(list)
    for i, it in enumerate(items):
        by_cat[it.category].append(i)
    cats = sorted(by_cat)
    rng.shuffle(cats)
    for c in cats:
        rng.shuffle(by_cat[c])
    quota = {c: 0 for c in cats}
    left = n
    while left > 0:
        progressed = False
        for c in cats:
            if left == 0:
                break
            if quota[c] < len(by_cat[c]):
                quota[c] += 1
                left -= 1
                progressed = True
        if not progressed:
            break
    chosen = sorted(i for c in cats for i in by_cat[c][: quota[c]])
    return [items[i] for i in chosen]


def sample_representative(
    items: Sequence[PromptItem],
    n: int,
    seed: int = 0,
    embed: Callable[[list[str]], "object"] | None = None,
) -> list[PromptItem]:
    """``n`` prompts nearest the centres of ``n`` k-means clusters of their embeddings.

    ``embed`` maps texts to an (m, d) array; default: all-MiniLM-L6-v2
    (:func:`sprout_core.embeddings.encode`). Deterministic for a given seed.
    """
    import numpy as np
    from sklearn.cluster import KMeans

    if n <= 0:
        return []
    if n >= len(items):
        return list(items)
    if embed is None:
        from sprout_core.embeddings import encode as embed
    X = np.asarray(embed([it.prompt for it in items]), dtype=float)
    km = KMeans(n_clusters=n, random_state=seed, n_init=4).fit(X)
    chosen: list[int] = []
    taken: set[int] = set()
    for k in range(n):
        d = np.linalg.norm(X - km.cluster_centers_[k], axis=1)
        for idx in np.argsort(d):
            if int(idx) not in taken:
                taken.add(int(idx))
                chosen.append(int(idx))
                break
    return [items[i] for i in sorted(chosen)]
