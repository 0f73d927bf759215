"""The Sprout paper's judged answers as an evaluation source.

``llama2-13b-a100/responses.jsonl`` (optional texts, public data, never committed): 12,000 prompts
(6 tasks × 2,000), each with Llama-2-13B-chat's L0/L1/L2 answers, GPT-4's (gpt-4-0613) best-of-3 winner
and the dataset's reference answer. Without the texts, :func:`paper_tables` is built from the shipped
verdicts alone (:func:`verdict_rows`: same prompts, winners and energies, empty texts).
``requests.csv`` gives each answer's measured GPU energy (kWh → J here) and time, labelled
``reference:sprout-paper``. Our reference judge can be run over the same triples
(:func:`reference_verdicts`) to measure how often it agrees with GPT-4; its verdicts are cached in the
git-ignored state folder (a derived cache of public data, never committed).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

import pandas as pd

from sprout_core import refdata
from sprout_core.cache import KeyedCache
from sprout_core.evaluate.aggregate import Agreement, agreement, win_shares
from sprout_core.evaluate.judges import is_correct, judge_reference, reference_kind
from sprout_core.paths import state_dir

SOURCE = "llama2-13b-a100"
GPT4_JUDGE = "gpt-4-0613 (paper)"
LEVELS = ["L0", "L1", "L2"]
METHOD = "reference:sprout-paper"
J_PER_KWH = 3.6e6
_CACHE_NAME = "paper_reference_verdicts.jsonl"


def load_responses() -> list[dict]:
    """The 12,000 judged answer triples (MissingDataError when the public file is absent)."""
    path = refdata.responses_path()
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def verdict_rows() -> list[dict]:
    """The 12,000 judged prompts without texts: ``task, prompt_index, winner`` from the shipped verdicts,
    ``prompt`` and the L0/L1/L2 answers empty, ``reference_answer`` None (same shape as :func:`load_responses`)."""
    jud = refdata.judgments()
    return [{"task": t, "prompt_index": int(i), "prompt": "", "L0": "", "L1": "", "L2": "", "winner": w,
             "reference_answer": None} for t, i, w in zip(jud["task"], jud["prompt_index"], jud["winner"])]


def load_request_costs() -> pd.DataFrame:
    """Per (task, prompt_index, level): energy_j (J, GPU-only, measured by the paper) and time_s (s)."""
    df = refdata.requests()
    df = df[df["variant"].isin(LEVELS)].rename(columns={"variant": "level"})
    df["energy_j"] = df["energy_kwh"] * J_PER_KWH
    return df[["task", "prompt_index", "level", "energy_j", "time_s"]]


def _cache_path():
    return state_dir() / _CACHE_NAME


def similarity_texts(rows: list[dict]) -> list[str]:
    """The texts :func:`reference_verdicts` must embed (the same rule as :func:`judge_reference`): for a
    triple whose reference needs similarity, the answers tied at the best correctness and the reference.
    Interleaved over tasks (1st of each task, 2nd of each task, …) so an interrupted pass has embedded an
    even share of every task; the embedding cache makes the next pass start where this one stopped."""
    rank: dict[str, int] = {}
    order = []
    for r in rows:
        rank[r["task"]] = rank.get(r["task"], 0) + 1
        order.append((rank[r["task"]], r["task"]))
    need: list[str] = []
    for _, r in sorted(zip(order, rows), key=lambda x: x[0]):
        ref = r.get("reference_answer") or ""
        kind = reference_kind(ref) if ref.strip() else None
        if kind in ("text", "short") or (kind == "number" and len(ref.split()) > 3):
            # similarity only breaks ties among the answers that share the best correctness: embed those
            texts = [r[lv] or "" for lv in LEVELS]
            corr = [bool(is_correct(t, ref, kind)) for t in texts]
            tied = list(dict.fromkeys(t for t, c in zip(texts, corr) if c == max(corr)))
            if len(tied) >= 2:
                need.extend(tied + [ref])
    return list(dict.fromkeys(need))


def reference_verdicts(rows: list[dict] | None = None, progress: Callable[[str, int, int], None] | None = None,
                       use_cache: bool = True, similarity_encode=None) -> dict[tuple[str, int], dict]:
    """Our reference judge on every triple: ``(task, prompt_index)`` → ``{winner, valid, raw, kind}``.

    All texts that need similarity are embedded in one batched, cached pass first
    (``progress("embedding", done, total)``), then judged (``progress("judging", i, n)``).
    """
    import numpy as np

    from sprout_core.embeddings import encode

    cache = _cache_path()
    if use_cache and cache.exists() and rows is None:
        out = {}
        for line in cache.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            out[(r["task"], int(r["prompt_index"]))] = r
        if len(out) >= 12000:
            return out
    rows = rows if rows is not None else load_responses()
    need = similarity_texts(rows)
    vec: dict[str, np.ndarray] = {}
    if need:
        uniq = list(dict.fromkeys(need))
        embs = encode(uniq, progress=(lambda d, t: progress("embedding", d, t)) if progress else None,
                      encoder=similarity_encode)
        vec = dict(zip(uniq, embs))

    def sim(texts, ref):
        # texts without a vector are not tied at the top: their similarity cannot change the verdict
        if ref not in vec:
            return [0.0] * len(texts)
        return [float(vec[t] @ vec[ref]) if t in vec else 0.0 for t in texts]

    out = {}
    for i, r in enumerate(rows):
        v = judge_reference({lv: r[lv] or "" for lv in LEVELS}, r.get("reference_answer"), similarity=sim)
        out[(r["task"], int(r["prompt_index"]))] = {"task": r["task"], "prompt_index": int(r["prompt_index"]),
                                                    "winner": v.winner, "valid": v.valid, "kind": v.reason, "raw": v.raw}
        if progress and (i % 500 == 0 or i == len(rows) - 1):
            progress("judging", i + 1, len(rows))
    if use_cache:
        with cache.open("w", encoding="utf-8") as f:
            for rec in out.values():
                f.write(json.dumps(rec) + "\n")
    return out


def cached_reference_verdicts() -> dict[tuple[str, int], dict] | None:
    """The cached verdicts if :func:`reference_verdicts` has run on this machine, else ``None``."""
    cache = _cache_path()
    if not cache.exists():
        return None
    out = {}
    for line in cache.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        out[(r["task"], int(r["prompt_index"]))] = r
    return out


@dataclass
class TaskAgreement:
    """Per task: our judge vs GPT-4 (agreement), both judges' win shares, and the reference's exact-match
    correctness rate per level (for letter/number tasks; ``None`` elsewhere)."""

    task: str
    agreement: Agreement
    judge_shares: dict[str, float | None]
    gpt4_shares: dict[str, float | None]
    n_invalid: int

    def to_dict(self) -> dict:
        return {"task": self.task, "n": self.agreement.n, "agree": self.agreement.agree,
                "agreement_percent": self.agreement.percent, "cohen_kappa": self.agreement.kappa,
                "invalid": self.n_invalid, "reference_judge_shares": self.judge_shares, "gpt4_shares": self.gpt4_shares}


def agreement_with_gpt4(rows: list[dict], verdicts: dict[tuple[str, int], dict], judge_name: str = "reference") -> list[TaskAgreement]:
    """Per task (and ``all``) agreement of ``verdicts`` with the paper's GPT-4 winners."""
    tasks = sorted({r["task"] for r in rows})
    out = []
    for task in tasks + ["all"]:
        sel = [r for r in rows if task == "all" or r["task"] == task]
        gpt = {(r["task"], int(r["prompt_index"])): r["winner"] for r in sel}
        ours = {k: (verdicts[k]["winner"] if verdicts.get(k, {}).get("valid") else None) for k in gpt}
        ag = agreement(ours, gpt, judge_name, GPT4_JUDGE)
        ws_o = win_shares(list(ours.values()), LEVELS)
        ws_g = win_shares(list(gpt.values()), LEVELS)
        out.append(TaskAgreement(task, ag, ws_o.share, ws_g.share, ws_o.n_invalid))
    return out


def gpt4_verdict_table() -> pd.DataFrame:
    """The paper's GPT-4 verdicts as the long table :func:`~sprout_core.evaluate.shares.quality_estimate`
    reads (one row per judged prompt, lengths and identical-answer groups from the shipped numbers; the
    order shown was not stored). Reads only the shipped numbers, never the texts."""
    jud = refdata.judgments()
    df = pd.DataFrame({"task": jud["task"].astype(str), "prompt_id": jud["task"] + "-" + jud["prompt_index"].astype(str),
                       "judge": GPT4_JUDGE, "winner": jud["winner"], "order": ""})
    lens = refdata.answer_lengths()
    if lens is not None:
        for c in [f"words_{lv}" for lv in LEVELS] + [f"group_{lv}" for lv in LEVELS]:
            df[c] = lens[c].to_numpy()
    return df


def reference_quality(control: bool = True):
    """:class:`~sprout_core.evaluate.shares.QualityEstimate` of the paper's GPT-4 verdicts (cached per process).

    ``control=True``: identical answers tied and length controlled (the default mode's q); ``control=False``
    skips the fit (``controlled_pct`` = ``raw_pct``; raw still ties identical answers — paper mode, which
    uses the authors' plain one-hot counts, reads :func:`sprout_core.refdata.judgments` directly)."""
    from sprout_core.evaluate.shares import quality_estimate

    key = ("reference_quality", bool(control), refdata.numbers_source())
    return _EST_CACHE.get(key, lambda: quality_estimate(gpt4_verdict_table(), GPT4_JUDGE, control, LEVELS))


def reference_credits(control: bool = True):
    """``[12000, 3]`` per-prompt credits of the paper's GPT-4 verdicts (rows sum to 1), row for row with
    :func:`sprout_core.refdata.judgments` — :func:`~sprout_core.evaluate.shares.prompt_credits` with
    identical answers tied and, when ``control``, length controlled per task. Cached per process."""
    from sprout_core.evaluate.shares import prompt_credits

    key = ("reference_credits", bool(control), refdata.numbers_source())

    def make():
        df = gpt4_verdict_table()
        lengths = df[[f"words_{lv}" for lv in LEVELS]].to_numpy(float) if "words_L0" in df else None
        groups = df[[f"group_{lv}" for lv in LEVELS]].to_numpy() if "group_L0" in df else None
        return prompt_credits(list(df["winner"]), lengths=lengths, levels=LEVELS, control=control,
                              groups=groups, tasks=list(df["task"]))

    return _EST_CACHE.get(key, make)


_EST_CACHE: KeyedCache = KeyedCache("reference quality estimates")


def correctness_rates(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per task with exact references (letter/number): share of each level's answers that are correct."""
    out: dict[str, dict[str, float]] = {}
    for task in sorted({r["task"] for r in rows}):
        sel = [r for r in rows if r["task"] == task]
        kinds = {reference_kind(r["reference_answer"] or "") for r in sel[:50]}
        if not kinds <= {"letter", "number"}:
            continue
        out[task] = {lv: sum(bool(is_correct(r[lv] or "", r["reference_answer"])) for r in sel) / len(sel) for lv in LEVELS}
    return out


def paper_tables(rows: list[dict] | None = None, with_reference_judge: bool = True):
    """The paper's triples as :class:`~sprout_core.evaluate.results.EvalTables` (source ``paper``):
    GPT-4 verdicts, and our reference judge's where cached; energy per answer in J (``reference:sprout-paper``).
    Without the optional texts the prompts and answers are empty (:func:`verdict_rows`)."""
    from sprout_core.evaluate.results import ANSWER_COLS, PROMPT_COLS, VERDICT_COLS, EvalTables

    if rows is None:
        rows = load_responses() if refdata.texts_available() else verdict_rows()
    run = "Sprout paper: Llama-2-13B-chat, A100, GPT-4 judge"
    P = pd.DataFrame({"source": "paper", "run": run, "prompt_id": [f"{r['task']}-{r['prompt_index']}" for r in rows],
                      "task": [r["task"] for r in rows], "prompt": [r["prompt"] for r in rows],
                      "reference": [r.get("reference_answer") for r in rows]}, columns=PROMPT_COLS)
    long = pd.DataFrame([(r["task"], int(r["prompt_index"]), lv, r[lv]) for r in rows for lv in LEVELS],
                        columns=["task", "prompt_index", "level", "text"])
    try:
        long = long.merge(load_request_costs(), on=["task", "prompt_index", "level"], how="left")
    except FileNotFoundError:
        long["energy_j"], long["time_s"] = float("nan"), float("nan")
    A = pd.DataFrame({"source": "paper", "run": run,
                      "prompt_id": long["task"] + "-" + long["prompt_index"].astype(str), "level": long["level"],
                      "text": long["text"], "new_tokens": float("nan"), "total_s": long["time_s"],
                      "energy_j": long["energy_j"],
                      "energy_method": long["energy_j"].notna().map({True: METHOD, False: "n/a"}),
                      "model": "Llama-2-13b-chat"}, columns=ANSWER_COLS)
    V = [("paper", run, f"{r['task']}-{r['prompt_index']}", GPT4_JUDGE, 1, r["winner"], r["winner"] in LEVELS,
          "random (not stored in the artifact)", f"GPT-4 chose {r['winner']}") for r in rows]
    cached = cached_reference_verdicts() if with_reference_judge else None
    if cached:
        for r in rows:
            v = cached.get((r["task"], int(r["prompt_index"])))
            if v:
                V.append(("paper", run, f"{r['task']}-{r['prompt_index']}", "reference", 1, v["winner"], bool(v["valid"]),
                          ",".join(LEVELS), v["raw"]))
    return EvalTables(P, A, pd.DataFrame(V, columns=VERDICT_COLS))
