"""What the Evaluations page explains: what each judge does and how it breaks ties, what the counts mean,
which answer won a prompt, and the win-share chart in the level colours (no streamlit)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sprout_core import style
from sprout_core.evaluate.judges import WEAK_JUDGE_NOTE
from sprout_core.evaluate.reference import GPT4_JUDGE
from sprout_core.evaluate.results import EvalTables

#: what the reference judge writes as the raw reply of a prompt it cannot judge
NO_REFERENCE_RAW = "no reference answer"


def judge_explanation(judge: str) -> str:
    """What ``judge`` does, how it breaks ties, and how to read its win shares (markdown, one paragraph)."""
    if judge == "reference":
        return ("**Reference judge** (automatic, no LLM). It compares each level's answer with the prompt's reference "
                "answer: a **correct** answer beats a wrong one (the final number for arithmetic, the letter for "
                "multiple choice, the reference words for short facts); among equally correct answers the one **most "
                "similar** in meaning to the reference wins (all-MiniLM-L6-v2 cosine; equal to 3 decimals is a tie); a "
                "tie goes to the **shorter answer** (identical answers: the briefer directive). Prompts without a "
                "reference answer are not judged. Because ties go to the shorter answer, brief levels win close calls: "
                "a high share for L1 or L2 means *as correct and as close to the reference, and shorter* — not *better "
                "written*.")
    if judge == GPT4_JUDGE:
        return ("**GPT-4 judge** (Sprout paper, published verdicts). GPT-4 saw the three Llama-2-13B-chat answers to a "
                "prompt in a random order and had to name the best one — no ties. A level's share is how often GPT-4 "
                "preferred it; the order it saw was not published. Where the winner's text is identical to another "
                "level's (about one triple in five has identical L1 and L2 answers), Sprout splits the credit between "
                "them: GPT-4 could only choose by position there.")
    if judge == "human":
        return ("**Human judge**: a person's pick of the best answer (the Playground's *Which answer is best?* or the "
                "detail below). One vote per prompt, the first is kept; no ties.")
    if judge.startswith(("llm", "api")):
        weak = f" With the embedded 135M model it is {WEAK_JUDGE_NOTE}." if judge == "llm:embedded" else ""
        return ("**LLM judge**: the judge model sees every level's answer in a seeded, shuffled order (stored) and must "
                "reply `Output (k)` for the best one — no ties. A reply it cannot parse is stored as **invalid**, never "
                "guessed. With a second pass it sees another order, which measures position consistency." + weak)
    return f"**{judge}**: verdicts imported with the results; a level's share is how often this judge picked it."


@dataclass(frozen=True)
class JudgeCounts:
    """How many of the selection's ``prompts`` a judge decided: ``judged`` (a valid verdict, counted in the
    shares), ``no_reference`` (the reference judge had nothing to compare with), ``invalid`` (any other
    unusable verdict, e.g. an unreadable LLM reply) and ``not_judged`` (no verdict of this judge yet)."""

    prompts: int
    judged: int
    invalid: int
    no_reference: int
    not_judged: int

    def sentence(self) -> str:
        parts = []
        def has(n: int) -> str:
            return f"{n:,} {'has' if n == 1 else 'have'}"

        if self.no_reference:
            parts.append(f"{has(self.no_reference)} no reference answer to judge against")
        if self.invalid:
            parts.append(f"{self.invalid:,} got an invalid verdict (excluded)")
        if self.not_judged:
            parts.append(f"{has(self.not_judged)} no verdict of this judge yet")
        rest = (": " + "; ".join(parts)) if parts else ""
        return (f"**{self.judged:,} of {self.prompts:,} prompts judged** — the shares are over these{rest}. "
                "Each judged prompt counts once, for the level that won it.")


def judge_counts(sel: EvalTables, judge: str) -> JudgeCounts:
    """:class:`JudgeCounts` of ``judge`` over the prompts of ``sel`` (pass 1 verdicts)."""
    key = ["source", "run", "prompt_id"]
    prompts = sel.prompts.drop_duplicates(key)
    v = sel.verdicts[(sel.verdicts["judge"] == judge) & (sel.verdicts["pass_no"] == 1)].drop_duplicates(key)
    valid = v["valid"].astype(bool)
    no_ref = (~valid) & (v["raw"].astype(str) == NO_REFERENCE_RAW)
    return JudgeCounts(prompts=len(prompts), judged=int(valid.sum()), invalid=int((~valid & ~no_ref).sum()),
                       no_reference=int(no_ref.sum()), not_judged=max(0, len(prompts) - len(v)))


def winners(sel: EvalTables, run: str, prompt_id: str) -> dict[str, str | None]:
    """Judge → winning level of one prompt (pass 1; ``None`` for an invalid verdict)."""
    v = sel.verdicts[(sel.verdicts["run"] == run) & (sel.verdicts["prompt_id"] == prompt_id) & (sel.verdicts["pass_no"] == 1)]
    return {str(j): (str(w) if ok and isinstance(w, str) else None) for j, w, ok in zip(v["judge"], v["winner"], v["valid"])}


def winner_note(level: str, wins: dict[str, str | None], judge: str | None) -> str:
    """``"best (reference)"`` on the winner's heading; other judges' picks as ``"also llm:x"``."""
    by = [j for j, w in wins.items() if w == level]
    if not by:
        return ""
    if judge in by:
        others = [j for j in by if j != judge]
        return f"best ({judge})" + (f", also {', '.join(others)}" if others else "")
    return f"picked by {', '.join(by)}"


def prompt_columns(table: pd.DataFrame) -> list[str]:
    """The prompt table's columns, key ones first: id, task, prompt, each judge's winner, tokens and energy per
    level, energy method — then where the row comes from (run, source)."""
    first = [c for c in ("prompt_id", "task", "prompt") if c in table.columns]
    winners_ = [c for c in table.columns if c.startswith("winner · ")]
    tokens = [c for c in table.columns if c.endswith(" tokens")]
    energy = [c for c in table.columns if c.endswith(" energy (J)")]
    rest = [c for c in table.columns if c not in first + winners_ + tokens + energy + ["run", "source", "reference"]]
    return first + winners_ + tokens + energy + rest + [c for c in ("run", "source") if c in table.columns]


def share_figure(shares: pd.DataFrame, levels: list[str]):
    """Win share per task and level: bars = the controlled share (the estimate the optimizer uses) with its
    95 % interval, diamonds = the raw share, in the level colours (``shares``: :func:`results.shares_frame`
    rows of one judge)."""
    import plotly.graph_objects as go

    plot = shares.dropna(subset=["share"])
    colors = style.level_color_map(levels)
    controlled = bool(plot["controlled"].iloc[0]) if "controlled" in plot.columns and len(plot) else False
    fig = go.Figure()
    for lv in levels:
        d = plot[plot["level"] == lv]
        if d.empty:
            continue
        fig.add_bar(x=d["task"], y=d["share"] * 100, name=f"{lv} {'controlled' if controlled else 'raw'}",
                    marker_color=colors.get(lv), offsetgroup=lv,
                    error_y=dict(type="data", symmetric=False, array=(d["ci_high"] - d["share"]) * 100,
                                 arrayminus=(d["share"] - d["ci_low"]) * 100),
                    customdata=d[["n_valid", "n_invalid"]].to_numpy(),
                    hovertemplate="%{x}: %{y:.1f} %<br>%{customdata[0]} prompts, %{customdata[1]} invalid<extra></extra>")
        if controlled and "raw_share" in d.columns:
            fig.add_scatter(x=d["task"], y=d["raw_share"] * 100, mode="markers", name=f"{lv} raw", offsetgroup=lv,
                            marker=dict(symbol="diamond-open", size=10, color="#333333", line=dict(width=2)),
                            hovertemplate="%{x}: raw %{y:.1f} %<extra></extra>", showlegend=lv == levels[0])
    fig.update_layout(barmode="group", scattermode="group", height=380, margin=dict(t=30, b=10), yaxis_range=[0, 100],
                      yaxis_title="win share (%)", xaxis_title="task", legend=dict(orientation="h", y=-0.2))
    return fig


def share_metric(row) -> tuple[str, str | None]:
    """``(value, note)`` of one level's pooled share for a metric: the controlled share and, below it, the
    raw one and the interval (``row``: a :func:`results.shares_frame` row)."""
    if row is None or pd.isna(row.share):
        return "n/a", "no valid verdict"
    pct = f"{row.share * 100:.1f} %"
    ci = f"95 % CI {row.ci_low * 100:.0f}–{row.ci_high * 100:.0f} %"
    if getattr(row, "controlled", False):
        return pct, f"raw {row.raw_share * 100:.1f} % · {ci}"
    return pct, ci


@dataclass(frozen=True)
class JudgeBias:
    """What the "Judge bias" panel shows for one judge: a per-task table and plain sentences."""

    table: pd.DataFrame
    sentences: list[str]
    position_known: bool


def _odds_per_doubling(b: float) -> float:
    import math

    return math.exp(b * math.log(2.0))


def judge_bias(est, task_names: list[str] | None = None) -> JudgeBias:
    """The bias panel from a :class:`~sprout_core.evaluate.shares.QualityEstimate`: per task the length
    effect (coefficient per log(word) ± standard error, and the odds change per doubling of length), the
    position effect where the order shown is stored (odds of the 2nd, 3rd… position against the 1st), the
    share of prompts whose credit was split as a tie, and per level raw → controlled shares with intervals."""
    rows = []
    for task, ts in est.tasks.items():
        if task_names and task not in task_names:
            continue
        r = {"task": task, "prompts": ts.n, "ties (% of prompts)": (100.0 * ts.ties / ts.n) if ts.n else None}
        if ts.length_coef is None:
            r["length effect"] = "n/a (too few prompts)" if ts.n else "n/a"
        else:
            r["length effect"] = (f"{ts.length_coef:+.2f} ± {ts.length_coef_se:.2f} "
                                  f"(odds ×{_odds_per_doubling(ts.length_coef):.2f} per doubling)")
        if ts.position_effect:
            r["position effect"] = ", ".join(f"{k + 1}. ×{np.exp(c):.2f}" for k, c in enumerate(ts.position_effect) if k)
        else:
            r["position effect"] = "n/a (order not stored)" if not est.position_known else "n/a"
        for lv, s in ts.levels.items():
            if s.raw_pct is None:
                r[lv] = "n/a"
            else:
                r[lv] = (f"{s.raw_pct:.1f} → {s.controlled_pct:.1f} % [{s.ci_low_pct:.0f}–{s.ci_high_pct:.0f}]"
                         if est.control else f"{s.raw_pct:.1f} % [{s.raw_ci_low_pct:.0f}–{s.raw_ci_high_pct:.0f}]")
        rows.append(r)
    table = pd.DataFrame(rows)
    return JudgeBias(table, bias_sentences(est, task_names), est.position_known)


def bias_sentences(est, task_names: list[str] | None = None) -> list[str]:
    """Plain sentences: which tasks the judge rewards length in (coefficient > 2 se), which it penalises,
    how many verdicts were ties, and what the controlled share does — what to know before trusting q."""
    long_, short_ = [], []
    for task, ts in est.tasks.items():
        if (task_names and task not in task_names) or ts.length_coef is None:
            continue
        if ts.length_coef > 2 * ts.length_coef_se:
            long_.append(f"{task} (×{_odds_per_doubling(ts.length_coef):.2f})")
        elif ts.length_coef < -2 * ts.length_coef_se:
            short_.append(f"{task} (×{_odds_per_doubling(ts.length_coef):.2f})")
    out = []
    if long_:
        out.append("This judge prefers **longer** answers in " + ", ".join(long_) + " — the odds of winning per doubling "
                   "of an answer's length, at equal level. Raw shares there over-rate the verbose level.")
    if short_:
        out.append("It prefers **shorter** answers in " + ", ".join(short_) + ".")
    if not long_ and not short_:
        out.append("No length effect stands out (every coefficient is within 2 standard errors of 0, or n/a).")
    ties = sum(ts.ties for ts in est.tasks.values() if not task_names or ts.task in task_names)
    n = sum(ts.n for ts in est.tasks.values() if not task_names or ts.task in task_names)
    if n:
        out.append(f"{ties:,} of {n:,} prompts ({100.0 * ties / n:.0f} %) had identical answers as their winner, or a "
                   "tie: their credit is split, never decided by the order shown.")
    if est.position_known:
        out.append("The order shown is stored, so the position effect is fitted and removed too.")
    else:
        out.append("The order shown was not stored for these verdicts: a position bias cannot be measured or removed.")
    out.append("The controlled share is the share this judge would give at equal length (AlpacaEval's "
               "length-controlled win rate, a conditional logit per task); the optimizer uses it by default.")
    return out


def detail_key(source: str, options: list) -> str:
    """The Prompt selector's widget key: it changes whenever the list of prompts does (another source, run
    or filter), so the selector starts at the first prompt instead of keeping a choice from the old list."""
    import hashlib

    h = hashlib.sha1(repr((source, options)).encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"ev.detail.{h}"


def bias_display(table: pd.DataFrame) -> pd.DataFrame:
    """The bias table for display: the task as index, tie shares as "12 %" text, n/a for unknown."""
    if table.empty:
        return table
    out = table.copy()
    out["ties (% of prompts)"] = out["ties (% of prompts)"].map(lambda v: "n/a" if v is None or pd.isna(v) else f"{v:.0f} %")
    return out.set_index("task")


def flip_display(pc: pd.DataFrame) -> pd.DataFrame:
    """The position-consistency table for display: judge, task, prompts judged twice, flip rate and
    position consistency as "12 %" text (n/a when no prompt had two valid passes)."""
    def pct(v) -> str:
        return "n/a" if v is None or pd.isna(v) else f"{100.0 * v:.0f} %"

    out = pc.rename(columns={"pairs": "prompts judged twice", "both_valid": "both passes valid"}).copy()
    out["flip rate"] = out.pop("flip_rate").map(pct)
    out["position consistency"] = out.pop("share").map(pct)
    return out.drop(columns=["consistent"])


def people_vs_judges(tables: EvalTables, visitor: str | None = None) -> pd.DataFrame:
    """Agreement of people's blind votes with each judge (:func:`sprout_core.views.blind.people_vs_judges`)."""
    from sprout_core.views.blind import people_vs_judges as pvj

    return pvj(tables=tables, visitor=visitor)


def people_display(pv: pd.DataFrame) -> pd.DataFrame:
    """People-vs-judge agreement for display: votes, comparable votes, agreement as "67 % (4 of 6)"."""
    out = pv.copy()
    out["agreement"] = [("n/a" if p is None or pd.isna(p) else f"{p:.0f} % ({a} of {c})")
                        for p, a, c in zip(out["percent"], out["agree"], out["comparable"])]
    return out.drop(columns=["percent", "agree"]).rename(columns={"votes": "blind votes"})


#: the Evaluations page's judge choices → judge names (:func:`sprout_core.evaluate.judges.parse_judge`)
JUDGE_CHOICES = {"reference": "reference", "none": "none", "llm (embedded model)": "llm"}


def plan_run(prompt_source: str, n: int, seed: int, sampling: str, judge_name: str, api_model: str, second: bool,
             judge_folder: str = "", shared: bool = False):
    """Check a run's settings before anything loads: ``(judge spec or None, sampled prompts)``.

    Raises :class:`~sprout_core.errors.SproutError` subclasses with a message (an unknown or disallowed judge
    folder, a missing API model, an unreadable prompt set)."""
    from sprout_core import access
    from sprout_core.errors import InputError
    from sprout_core.evaluate.judges import parse_judge
    from sprout_core.evaluate.runner import sample_prompts

    if judge_name == "llm (local model folder)":
        from sprout_core.models import check_model_folder

        if not judge_folder.strip():
            raise InputError("Pick or type the judge's model folder first")
        judge_folder = access.check_model_spec(judge_folder, shared, "judge model")
        check_model_folder(judge_folder)  # names the folder and what is wrong before anything runs
        jname = f"llm:{judge_folder.strip()}"
    else:
        jname = JUDGE_CHOICES.get(judge_name) or f"api:{api_model.strip()}"
    judge = None if jname == "none" else parse_judge(jname, second_pass=second)
    return judge, sample_prompts(prompt_source, n, seed, sampling)


def start_run(lm, dset, prompt_source: str, prompts, judge, n: int, seed: int, sampling: str, max_new: int,
              second: bool):
    """Start an evaluation run in the background (:class:`~sprout_core.evaluate.runner.EvaluationJob`): the
    model ``lm`` answers under every level of ``dset``; the judge's model loads in the job's thread."""
    from sprout_core.evaluate.db import RunConfig
    from sprout_core.evaluate.runner import EvaluationJob, make_answer_fn, make_judge_chat

    levels = tuple(d.level for d in dset.levels)
    cfg = RunConfig(prompt_set=prompt_source, n=n, seed=seed, levels=levels, judge=judge.name if judge else "none",
                    model=lm.info.name, directive_set=dset.name, sampling=sampling, max_new_tokens=max_new,
                    second_pass=second, directive_texts=tuple(d.text for d in dset.levels))

    def setup():
        return make_answer_fn(lm, dset, max_new), (make_judge_chat(judge, lm) if judge else None)

    return EvaluationJob(cfg, prompts, setup, judge).start()
