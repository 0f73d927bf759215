"""Evaluation results as tables, for the page, the CLI and exports.

Three sources share one long shape (pandas DataFrames):

* ``own``: runs stored in SQLite by this machine's evaluator;
* ``shipped``: the evaluation exported to ``data/evaluations/*.jsonl`` (made by the evaluator itself);
* ``paper``: the Sprout paper's 12,000 GPT-4 verdicts on Llama-2-13B answers (public data,
  :mod:`sprout_core.evaluate.reference`).

Tables: ``prompts`` (source, run, prompt_id, task, prompt, reference), ``answers`` (… level, text,
new_tokens, total_s [s], energy_j [J, NaN = n/a], energy_method) and ``verdicts`` (… judge, pass_no,
winner, valid, order, raw).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from sprout_core.errors import ProfileError
from sprout_core.evaluate import db
from sprout_core.evaluate.aggregate import agreement_matrix, win_shares_by_task
from sprout_core.paths import project_data_dir
from sprout_core.profiles import QHandoff

PROMPT_COLS = ["source", "run", "prompt_id", "task", "prompt", "reference"]
ANSWER_COLS = ["source", "run", "prompt_id", "level", "text", "new_tokens", "total_s", "energy_j", "energy_method", "model"]
VERDICT_COLS = ["source", "run", "prompt_id", "judge", "pass_no", "winner", "valid", "order", "raw"]


@dataclass
class EvalTables:
    """The three long tables of one or more sources."""

    prompts: pd.DataFrame
    answers: pd.DataFrame
    verdicts: pd.DataFrame

    @staticmethod
    def empty() -> "EvalTables":
        return EvalTables(pd.DataFrame(columns=PROMPT_COLS), pd.DataFrame(columns=ANSWER_COLS),
                          pd.DataFrame(columns=VERDICT_COLS))

    def concat(self, other: "EvalTables") -> "EvalTables":
        def cat(a, b):
            frames = [f for f in (a, b) if len(f)]
            return pd.concat(frames, ignore_index=True) if frames else a
        return EvalTables(cat(self.prompts, other.prompts), cat(self.answers, other.answers), cat(self.verdicts, other.verdicts))


# ---------------------------------------------------------------- own runs (SQLite)

def own_tables(run_ids: Sequence[int] | None = None, visitor: str | None = None) -> EvalTables:
    """Runs stored in the database (all when ``run_ids`` is None).

    People's votes not merged yet (class mode: ``merged = 0``) are left out, with their prompts, except
    those of ``visitor`` (a visitor sees their own votes until the operator merges them)."""
    con = db.connect()
    try:
        runs = {r["id"]: r for r in db.list_runs(con)}
        prompts, answers, judg = db.run_tables(con, run_ids)
    finally:
        con.close()
    hidden = {(x["run_id"], x["prompt_id"]) for x in judg
              if not x.get("merged", 1) and not (visitor and x.get("visitor") == visitor)}
    if hidden:
        judg = [x for x in judg if (x["run_id"], x["prompt_id"]) not in hidden]
        prompts = [x for x in prompts if (x["run_id"], x["prompt_id"]) not in hidden]
        answers = [x for x in answers if (x["run_id"], x["prompt_id"]) not in hidden]
    answers = [a for a in answers if not a.get("error")]  # error rows are failures, not answers (db.answer_errors)
    if not prompts:
        return EvalTables.empty()
    name = {rid: f"#{rid} {r['label']}" for rid, r in runs.items()}
    p = pd.DataFrame([{"source": "own", "run": name[x["run_id"]], "prompt_id": x["prompt_id"], "task": x["category"],
                       "prompt": x["prompt"], "reference": x["reference"]} for x in prompts], columns=PROMPT_COLS)
    a = pd.DataFrame([{"source": "own", "run": name[x["run_id"]], "prompt_id": x["prompt_id"], "level": x["level"],
                       "text": x["text"], "new_tokens": x["new_tokens"], "total_s": x["total_s"],
                       "energy_j": x["energy_j"], "energy_method": x["energy_method"],
                       "model": x.get("model") or runs.get(x["run_id"], {}).get("model")} for x in answers], columns=ANSWER_COLS)
    v = pd.DataFrame([{"source": "own", "run": name[x["run_id"]], "prompt_id": x["prompt_id"], "judge": x["judge"],
                       "pass_no": x["pass_no"], "winner": x["winner"], "valid": bool(x["valid"]),
                       "order": ",".join(json.loads(x["shown_order"])), "raw": x["raw"]} for x in judg], columns=VERDICT_COLS)
    return EvalTables(p, a, v)


def run_summary(run_id: int) -> dict:
    """Per-level means (new tokens, s, J with method) and each judge's win shares for one run."""
    t = own_tables([run_id])
    con = db.connect()
    try:
        levels = con.execute("SELECT levels FROM eval_runs WHERE id=?", (run_id,)).fetchone()[0].split(",")
    finally:
        con.close()
    out: dict = {"run_id": run_id, "prompts": int(len(t.prompts)), "answers": int(len(t.answers)), "levels": {},
                 "win_shares": {}, "win_shares_by_task": {}, "flip_rate": {}}
    for lv in levels:
        a = t.answers[t.answers["level"] == lv]
        e = pd.to_numeric(a["energy_j"], errors="coerce")
        methods = sorted(set(a["energy_method"].dropna()))
        out["levels"][lv] = {
            "answers": int(len(a)),
            "new_tokens_mean": float(a["new_tokens"].mean()) if len(a) else None,
            "total_s_mean": float(a["total_s"].mean()) if len(a) else None,
            "energy_j_mean": float(e.mean()) if e.notna().any() else None,
            "energy_method": "+".join(methods) if methods else "n/a",
        }
    first = t.verdicts[t.verdicts["pass_no"] == 1]
    tasks = t.prompts.set_index("prompt_id")["task"].to_dict()
    for judge, g in first.groupby("judge"):
        rows = [(tasks.get(pid, "?"), w if ok else None) for pid, w, ok in zip(g["prompt_id"], g["winner"], g["valid"])]
        by = win_shares_by_task(rows, levels, judge=str(judge))
        out["win_shares"][judge] = by["all"].to_dict()
        out["win_shares_by_task"][judge] = {k: v.to_dict() for k, v in by.items() if k != "all"}
    con = db.connect()
    try:
        stored = db.flip_rates(con, [run_id])
    finally:
        con.close()
    for judge in sorted({r["judge"] for r in stored}):
        rows = [r for r in stored if r["judge"] == judge]
        pairs, flips = sum(r["pairs"] for r in rows), sum(r["flips"] for r in rows)
        out["flip_rate"][judge] = {"pairs": pairs, "flips": flips, "rate": flips / pairs if pairs else None,
                                   "by_task": {r["task"]: {"pairs": r["pairs"], "flips": r["flips"], "rate": r["rate"]}
                                               for r in rows}}
    return out


# ---------------------------------------------------------------- shipped results (data/evaluations)

def evaluations_dir() -> Path:
    return project_data_dir() / "evaluations"


def export_run(run_id: int, path: str | Path, command: str = "") -> list[Path]:
    """Write one run as JSONL (one line per prompt: answers per level + verdicts) and ``.meta.json``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = db.connect()
    try:
        run = dict(con.execute("SELECT * FROM eval_runs WHERE id=?", (run_id,)).fetchone())
        prompts, answers, judg = db.run_tables(con, [run_id])
    finally:
        con.close()
    levels = run["levels"].split(",")
    by_ans = {(a["prompt_id"], a["level"]): a for a in answers}
    by_v: dict[str, list] = {}
    for j in judg:
        by_v.setdefault(j["prompt_id"], []).append(j)
    with path.open("w", encoding="utf-8") as f:
        for p in prompts:
            row = {"id": p["prompt_id"], "category": p["category"], "prompt": p["prompt"], "reference": p["reference"],
                   "answers": {}, "verdicts": []}
            for lv in levels:
                a = by_ans.get((p["prompt_id"], lv))
                if a:
                    row["answers"][lv] = {k: a[k] for k in ("directive", "text", "prompt_tokens", "new_tokens", "ttft_s",
                                                            "total_s", "finish_reason", "energy_j", "energy_method",
                                                            "energy_uncertainty_j")}
            for j in sorted(by_v.get(p["prompt_id"], []), key=lambda x: (x["judge"], x["pass_no"])):
                row["verdicts"].append({"judge": j["judge"], "pass_no": j["pass_no"], "winner": j["winner"],
                                        "valid": bool(j["valid"]), "order": json.loads(j["shown_order"]), "raw": j["raw"],
                                        "details": json.loads(j["details"] or "{}")})
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    meta = {k: run[k] for k in ("label", "prompt_set", "n", "seed", "sampling", "levels", "judge", "model", "directive_set")}
    meta.update(params=json.loads(run["params"]), command=command, exported_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                summary=run_summary(run_id))
    meta_path = path.with_suffix(".meta.json")
    meta_path.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return [path, meta_path]


def shipped_runs() -> list[Path]:
    """JSONL exports in ``data/evaluations``."""
    d = evaluations_dir()
    return sorted(d.glob("*.jsonl")) if d.is_dir() else []


def shipped_tables(paths: Sequence[Path] | None = None) -> EvalTables:
    """The shipped evaluations as tables (source ``shipped``)."""
    out = EvalTables.empty()
    for path in (paths if paths is not None else shipped_runs()):
        meta_path = path.with_suffix(".meta.json")
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        run = f"shipped: {meta.get('label') or path.stem}"
        meta_model = meta.get("model")
        P, A, V = [], [], []
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            P.append({"source": "shipped", "run": run, "prompt_id": r["id"], "task": r.get("category", "general"),
                      "prompt": r["prompt"], "reference": r.get("reference")})
            for lv, a in r.get("answers", {}).items():
                A.append({"source": "shipped", "run": run, "prompt_id": r["id"], "level": lv, "text": a.get("text", ""),
                          "new_tokens": a.get("new_tokens"), "total_s": a.get("total_s"), "energy_j": a.get("energy_j"),
                          "energy_method": a.get("energy_method") or "n/a", "model": meta_model})
            for v in r.get("verdicts", []):
                V.append({"source": "shipped", "run": run, "prompt_id": r["id"], "judge": v["judge"],
                          "pass_no": v.get("pass_no", 1), "winner": v.get("winner"), "valid": bool(v.get("valid")),
                          "order": ",".join(v.get("order", [])), "raw": v.get("raw", "")})
        out = out.concat(EvalTables(pd.DataFrame(P, columns=PROMPT_COLS), pd.DataFrame(A, columns=ANSWER_COLS),
                                    pd.DataFrame(V, columns=VERDICT_COLS)))
    return out


# ---------------------------------------------------------------- views

def prompt_table(t: EvalTables, levels: Sequence[str]) -> pd.DataFrame:
    """One row per (source, run, prompt): task, prompt, each judge's winner (pass 1), and per level
    new tokens and energy (J; NaN = n/a) with the energy method."""
    if t.prompts.empty:
        return pd.DataFrame(columns=["source", "run", "prompt_id", "task", "prompt"])
    base = t.prompts.drop_duplicates(["source", "run", "prompt_id"]).copy()
    key = ["source", "run", "prompt_id"]
    v = t.verdicts[t.verdicts["pass_no"] == 1]
    if len(v):
        w = v.assign(winner=v["winner"].where(v["valid"], "invalid")).pivot_table(
            index=key, columns="judge", values="winner", aggfunc="first")
        w.columns = [f"winner · {c}" for c in w.columns]
        base = base.merge(w.reset_index(), on=key, how="left")
    a = t.answers
    if len(a):
        tok = a.pivot_table(index=key, columns="level", values="new_tokens", aggfunc="first")
        tok.columns = [f"{c} tokens" for c in tok.columns]
        en = a.assign(energy_j=pd.to_numeric(a["energy_j"], errors="coerce")).pivot_table(
            index=key, columns="level", values="energy_j", aggfunc="first", dropna=False)
        en.columns = [f"{c} energy (J)" for c in en.columns]
        meth = a.groupby(key)["energy_method"].agg(lambda s: "+".join(sorted(set(map(str, s))))).rename("energy method")
        base = base.merge(tok.reset_index(), on=key, how="left").merge(en.reset_index(), on=key, how="left")
        base = base.merge(meth.reset_index(), on=key, how="left")
    return base


def verdict_table(t: EvalTables, levels: Sequence[str] | None = None) -> pd.DataFrame:
    """The long verdict table :func:`sprout_core.evaluate.shares.quality_estimate` reads, from the tables.

    One row per stored verdict (every pass): ``source, run, task, prompt_id`` (made unique across runs),
    ``judge, pass_no, winner, valid, order`` and per level ``words_<L>`` (whitespace words of the answer,
    NaN = not answered) and ``group_<L>`` (identical answers share a group). The paper's verdicts read
    lengths and groups from :func:`sprout_core.refdata.answer_lengths` (shipped numbers), since their
    texts may be absent; their order was not stored (``order`` empty).
    """
    from sprout_core import refdata
    from sprout_core.evaluate.shares import identity_groups, word_count

    levels = list(levels) if levels is not None else levels_of(t)
    key = ["source", "run", "prompt_id"]
    v = t.verdicts.copy()
    cols = ["source", "run", "task", "prompt_id", "judge", "pass_no", "winner", "valid", "order"] + \
        [f"words_{lv}" for lv in levels] + [f"group_{lv}" for lv in levels]
    if v.empty or not levels:
        return pd.DataFrame(columns=cols)
    tasks = t.prompts.drop_duplicates(key)[key + ["task"]]
    v = v.merge(tasks, on=key, how="left")
    v["task"] = v["task"].fillna("all").astype(str)
    a = t.answers[t.answers["source"] != "paper"] if len(t.answers) else t.answers  # paper: shipped numbers below
    texts = a.pivot_table(index=key, columns="level", values="text", aggfunc="first") if len(a) else pd.DataFrame()
    texts = texts.reindex(columns=levels)
    per = pd.DataFrame(index=texts.index)
    if len(texts):
        rows = [[None if (x is None or (isinstance(x, float) and pd.isna(x))) else str(x) for x in r]
                for r in texts.itertuples(index=False)]
        g = identity_groups(rows)
        for i, lv in enumerate(levels):
            per[f"words_{lv}"] = [np.nan if r[i] is None else float(word_count(r[i])) for r in rows]
            per[f"group_{lv}"] = g[:, i]
    paper_keys = v.loc[v["source"] == "paper", key].drop_duplicates()
    lens = refdata.answer_lengths() if len(paper_keys) and set(levels) <= set(refdata.LEVELS) else None
    if lens is not None:
        lens = lens.assign(prompt_id=lens["task"] + "-" + lens["prompt_index"].astype(str))
        block = paper_keys.merge(lens, on="prompt_id", how="left").set_index(key)
        block = block[[f"words_{lv}" for lv in levels] + [f"group_{lv}" for lv in levels]].astype(float)
        per = pd.concat([per, block]) if len(per) else block
    v = v.merge(per.reset_index(), on=key, how="left") if len(per) else v
    for c in cols:
        if c not in v.columns:
            v[c] = np.nan
    v["prompt_id"] = v["source"].astype(str) + "/" + v["run"].astype(str) + "/" + v["prompt_id"].astype(str)
    return v[cols]


def quality(t: EvalTables, judge: str, control: bool = True, levels: Sequence[str] | None = None):
    """:func:`sprout_core.evaluate.shares.quality_estimate` of ``judge`` over the tables (every pass)."""
    from sprout_core.evaluate.shares import quality_estimate

    levels = list(levels) if levels is not None else levels_of(t)
    return quality_estimate(verdict_table(t, levels), judge, control, levels)


def _frac(pct: float | None) -> float | None:
    return None if pct is None else pct / 100.0


SHARE_COLS = ["judge", "task", "level", "share", "ci_low", "ci_high", "raw_share", "raw_ci_low", "raw_ci_high",
              "controlled", "n_valid", "n_invalid", "ties", "length_coef", "length_coef_se", "position_known"]


def shares_frame(t: EvalTables, levels: Sequence[str], control: bool = True) -> pd.DataFrame:
    """Long table of win shares from the one estimate (:mod:`sprout_core.evaluate.shares`), per judge and
    task (incl. ``all``, pooled by prompts) and level, as fractions: ``share``/``ci_low``/``ci_high`` the
    controlled share and its 95 % interval (the raw one when ``control`` is False), ``raw_share``/
    ``raw_ci_*`` the raw one; ``n_valid`` prompts judged, ``n_invalid`` invalid verdicts, ``ties`` prompts
    whose credit was split, ``length_coef(_se)`` per log(word), ``position_known`` (order stored)."""
    from sprout_core.evaluate.shares import pooled_task, quality_estimate

    levels = list(levels)
    vt = verdict_table(t, levels)
    rows = []
    for judge in sorted(vt["judge"].dropna().astype(str).unique()) if len(vt) else []:
        est = quality_estimate(vt, judge, control, levels)
        items = list(est.tasks.items()) + [("all", pooled_task(est))]
        for task, ts in items:
            for lv in levels:
                s = ts.levels[lv]
                share, lo, hi = (s.controlled_pct, s.ci_low_pct, s.ci_high_pct) if control else \
                    (s.raw_pct, s.raw_ci_low_pct, s.raw_ci_high_pct)
                rows.append({"judge": judge, "task": task, "level": lv, "share": _frac(share), "ci_low": _frac(lo),
                             "ci_high": _frac(hi), "raw_share": _frac(s.raw_pct), "raw_ci_low": _frac(s.raw_ci_low_pct),
                             "raw_ci_high": _frac(s.raw_ci_high_pct), "controlled": bool(control), "n_valid": ts.n,
                             "n_invalid": ts.invalid, "ties": ts.ties, "length_coef": ts.length_coef,
                             "length_coef_se": ts.length_coef_se, "position_known": est.position_known})
    return pd.DataFrame(rows, columns=SHARE_COLS)


def agreement_frame(t: EvalTables) -> pd.DataFrame:
    """Pairwise judge agreement on the same prompts (pass 1): judge_a, judge_b, n, percent, kappa."""
    v = t.verdicts[t.verdicts["pass_no"] == 1]
    per: dict[str, dict] = {}
    for judge, g in v.groupby("judge"):
        per[str(judge)] = {(s, r, p): (w if ok else None) for s, r, p, w, ok in
                           zip(g["source"], g["run"], g["prompt_id"], g["winner"], g["valid"])}
    m = agreement_matrix(per)
    return pd.DataFrame([ag.to_dict() for ag in m.values()])


def position_consistency_frame(t: EvalTables) -> pd.DataFrame:
    """Per LLM judge with a second pass, per task and ``all``: prompts judged twice (``pairs``), with both
    passes valid (``both_valid``), the same winner both times (``consistent``), ``share`` consistent and
    ``flip_rate`` = 1 − share (the order shown changed the verdict; such a pair counts as a tie)."""
    v = t.verdicts
    cols = ["judge", "task", "pairs", "both_valid", "consistent", "share", "flip_rate"]
    rows = []
    key = ["source", "run", "prompt_id"]
    tasks = t.prompts.drop_duplicates(key)[key + ["task"]]
    for judge, g in v.groupby("judge"):
        p1 = g[g["pass_no"] == 1]
        p2 = g[g["pass_no"] == 2]
        if p2.empty:
            continue
        both = p1.merge(p2, on=key, suffixes=("_1", "_2"), how="inner").merge(tasks, on=key, how="left")
        both["task"] = both["task"].fillna("all")
        groups = [(str(task), d) for task, d in both.groupby("task")] + [("all", both)]
        for task, d in groups:
            ok = d[d["valid_1"].astype(bool) & d["valid_2"].astype(bool)]
            same = int((ok["winner_1"] == ok["winner_2"]).sum())
            share = same / len(ok) if len(ok) else None
            rows.append({"judge": judge, "task": task, "pairs": len(d), "both_valid": len(ok), "consistent": same,
                         "share": share, "flip_rate": None if share is None else 1.0 - share})
    return pd.DataFrame(rows, columns=cols)


def q_handoff(t: EvalTables, judge: str, levels: Sequence[str], label: str, control: bool = True) -> QHandoff:
    """The Optimizer hand-off for ``judge`` over the tables' prompts: per task and level the credit the
    one estimate gives (:mod:`sprout_core.evaluate.shares`; controlled when ``control``: identical answers
    tied, length-controlled; passes averaged) × the prompts judged — so the counts' sum per task is the
    number of prompts and their shares are the estimate's — and the model whose answers were judged
    (``None`` when mixed/unknown)."""
    from sprout_core.evaluate.shares import quality_estimate

    levels = tuple(levels)
    est = quality_estimate(verdict_table(t, levels), judge, control, levels)
    counts: dict[str, dict[str, float]] = {}
    for task, ts in est.tasks.items():
        if ts.n == 0:
            continue
        pct = {lv: ts.share(lv, control) for lv in levels}
        counts[task] = {lv: ts.n * (pct[lv] or 0.0) / 100.0 for lv in levels}
    if not counts:
        raise ProfileError(f"judge {judge!r} has no valid verdict in the selection")
    models = {str(m) for m in t.answers["model"].dropna().unique() if str(m) not in ("", "various")} \
        if "model" in t.answers.columns else set()
    kind = "length-controlled" if control else "raw"
    return QHandoff(label=f"{label}, {kind}", judge=judge, model=models.pop() if len(models) == 1 else None,
                    levels=levels, counts=counts)


def levels_of(t: EvalTables) -> list[str]:
    """The levels present in the answers, in level order (L0, L1, …)."""
    lv = {str(x) for x in t.answers["level"].dropna().unique()} if len(t.answers) else set()
    return sorted(lv, key=lambda s: (len(s), s))


def judges_of(t: EvalTables) -> list[str]:
    """Judges with verdicts in the tables."""
    return sorted({str(x) for x in t.verdicts["judge"].dropna().unique()}) if len(t.verdicts) else []


def filter_tables(t: EvalTables, runs: Sequence[str] | None = None, tasks: Sequence[str] | None = None,
                  judge: str | None = None, winner: str | None = None, text: str = "") -> EvalTables:
    """The tables restricted to prompts matching every filter given.

    ``runs``/``tasks``: keep those (None or empty = all); ``winner``: prompts where ``judge`` (pass 1)
    chose that level; ``text``: case-insensitive substring of the prompt or of any answer.
    """
    key = ["source", "run", "prompt_id"]
    p = t.prompts
    if runs:
        p = p[p["run"].isin(list(runs))]
    if tasks:
        p = p[p["task"].isin(list(tasks))]
    keys = p[key]
    if winner and judge:
        v = t.verdicts
        v = v[(v["judge"] == judge) & (v["pass_no"] == 1) & v["valid"] & (v["winner"] == winner)]
        keys = keys.merge(v[key].drop_duplicates(), on=key)
    text = (text or "").strip().lower()
    if text:
        in_prompt = p[p["prompt"].str.lower().str.contains(text, regex=False, na=False)][key]
        a = t.answers.merge(keys, on=key)
        in_ans = a[a["text"].astype(str).str.lower().str.contains(text, regex=False, na=False)][key]
        keys = keys.merge(pd.concat([in_prompt, in_ans]).drop_duplicates(), on=key)
    keys = keys.drop_duplicates()
    return EvalTables(t.prompts.merge(keys, on=key), t.answers.merge(keys, on=key), t.verdicts.merge(keys, on=key))


def ordered_runs(t: EvalTables) -> list[str]:
    """Run names, newest own run first (``#<id> …``), then shipped ones, then the rest alphabetically."""
    names = [str(x) for x in t.prompts["run"].dropna().unique()] if len(t.prompts) else []

    def key(name: str):
        if name.startswith("#"):
            try:
                return (0, -int(name[1:].split(" ", 1)[0]), name)
            except ValueError:
                pass
        return (1 if name.startswith("shipped:") else 2, 0, name)

    return sorted(names, key=key)


def own_run_id(run_name: str) -> int | None:
    """The database id of an own run's display name (``#<id> …``), else ``None`` (shipped, paper)."""
    if not run_name.startswith("#"):
        return None
    try:
        return int(run_name[1:].split(" ", 1)[0])
    except ValueError:
        return None


def add_human_verdict(run_id: int, prompt_id: str, winner: str, levels: Sequence[str]) -> bool:
    """Store a person's verdict on a stored run's prompt (judge ``human``); False if one is already there."""
    from sprout_core.evaluate.judges import Verdict

    if winner not in levels:
        raise ValueError(f"{winner!r} is not one of {list(levels)}")
    con = db.connect()
    try:
        return db.insert_verdict(con, run_id, prompt_id, Verdict("human", winner, True, list(levels),
                                                                 raw=f"person chose {winner} (Evaluations page)"))
    finally:
        con.close()
