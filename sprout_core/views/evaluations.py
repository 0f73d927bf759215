"""What the Evaluations page explains: what each judge does and how it breaks ties, what the counts mean,
which answer won a prompt, and the win-share chart in the level colours (no streamlit)."""
from __future__ import annotations

from dataclasses import dataclass

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
                "preferred it; the order it saw was not published.")
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
    """Win share per task and level, grouped bars in the level colours, 95% intervals as error bars."""
    import plotly.express as px

    plot = shares.dropna(subset=["share"]).assign(
        pct=lambda d: d["share"] * 100, plus=lambda d: (d["ci_high"] - d["share"]) * 100,
        minus=lambda d: (d["share"] - d["ci_low"]) * 100)
    fig = px.bar(plot, x="task", y="pct", color="level", barmode="group", error_y="plus", error_y_minus="minus",
                 labels={"pct": "win share (%)", "task": "task"}, category_orders={"level": levels},
                 color_discrete_map=style.level_color_map(levels), hover_data={"n_valid": True, "n_invalid": True})
    fig.update_layout(height=360, margin=dict(t=30, b=10), yaxis_range=[0, 100])
    return fig
