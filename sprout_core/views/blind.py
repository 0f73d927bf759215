"""Blind comparison (issue 18 item 5, as compar:IA does): people as judges, without labels.

Two levels' answers to one judged prompt are shown as "Answer A" and "Answer B" in a random order;
the visitor picks one, a tie, or "both bad"; then the levels, tokens, energy and carbon are revealed.
Pairs come from answers a judge has already judged (this machine's evaluation runs and the shipped
evaluation), so a person's verdict can be compared with the judge's on the same prompt.

Each vote is stored as an evaluation verdict of judge :data:`JUDGE` in a standing run
(:data:`RUN_KEY`), with the order shown (``shown_order`` = [A, B]), the prompt and both answers copied
(so the one quality estimate, :mod:`sprout_core.evaluate.shares`, reads them like any verdict: lengths,
ties and position), the original prompt in ``details`` and who voted. A tie or "both bad" splits the
credit. In class mode a visitor's votes stay theirs (``merged = 0``) until the operator merges them
(``python -m sprout_core evaluate --merge-votes``). No streamlit here.
"""
from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass, field

import pandas as pd

from sprout_core.evaluate import db
from sprout_core.evaluate.judges import Verdict
from sprout_core.evaluate.results import EvalTables

JUDGE = "people (blind)"
RUN_KEY = "playground-blind-votes"
CHOICES = {"A": "A is better", "B": "B is better", "tie": "Tie: equally good", "both_bad": "Both are bad"}


@dataclass(frozen=True)
class BlindAnswer:
    """One shown answer: its label (A/B), level, text, new tokens, energy in J (``None`` = n/a) with its
    method, and time in s."""

    label: str
    level: str
    text: str
    new_tokens: float | None
    energy_j: float | None
    energy_method: str
    total_s: float | None
    model: str | None = None


@dataclass(frozen=True)
class BlindPair:
    """Two answers to one judged prompt, in the order shown (``answers[0]`` is A)."""

    source: str
    run: str
    prompt_id: str
    task: str
    prompt: str
    answers: tuple[BlindAnswer, BlindAnswer]
    judge_winners: dict[str, str | None] = field(default_factory=dict)

    @property
    def order(self) -> list[str]:
        return [a.level for a in self.answers]

    def key(self) -> str:
        return f"{self.source}/{self.run}/{self.prompt_id}"


def _num(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if pd.isna(v) else v


def candidates(t: EvalTables) -> pd.DataFrame:
    """Judged prompts with at least two answers (``source, run, prompt_id``), blind votes excluded."""
    key = ["source", "run", "prompt_id"]
    a = t.answers
    if a.empty or t.verdicts.empty:
        return pd.DataFrame(columns=key)
    a = a[a["text"].astype(str).str.strip() != ""]
    n = a.groupby(key).size().rename("n").reset_index()
    judged = t.verdicts[(t.verdicts["judge"] != JUDGE) & t.verdicts["valid"].astype(bool)][key].drop_duplicates()
    out = n[n["n"] >= 2].merge(judged, on=key)
    return out[~out["run"].astype(str).str.contains("blind", case=False)][key].reset_index(drop=True)


def draw_pair(t: EvalTables, rng: random.Random) -> BlindPair | None:
    """A random judged prompt, two of its levels at random, in a random order (``None`` when none)."""
    cand = candidates(t)
    if cand.empty:
        return None
    src, run, pid = cand.iloc[rng.randrange(len(cand))].tolist()
    key = ["source", "run", "prompt_id"]
    a = t.answers[(t.answers["source"] == src) & (t.answers["run"] == run) & (t.answers["prompt_id"] == pid)]
    a = a[a["text"].astype(str).str.strip() != ""].drop_duplicates("level")
    levels = rng.sample(sorted(a["level"].astype(str)), 2)  # sample() gives a random order too
    p = t.prompts[(t.prompts["source"] == src) & (t.prompts["run"] == run) & (t.prompts["prompt_id"] == pid)].iloc[0]
    shown = []
    for label, lv in zip("AB", levels):
        r = a[a["level"] == lv].iloc[0]
        shown.append(BlindAnswer(label, lv, str(r["text"]), _num(r["new_tokens"]), _num(r["energy_j"]),
                                 str(r["energy_method"] or "n/a"), _num(r["total_s"]),
                                 None if pd.isna(r.get("model")) else str(r.get("model"))))
    v = t.verdicts.merge(pd.DataFrame([[src, run, pid]], columns=key), on=key)
    v = v[(v["pass_no"] == 1) & (v["judge"] != JUDGE)]
    wins = {str(j): (str(w) if ok and isinstance(w, str) else None) for j, w, ok in zip(v["judge"], v["winner"], v["valid"])}
    return BlindPair(str(src), str(run), str(pid), str(p["task"]), str(p["prompt"]), (shown[0], shown[1]), wins)


def winner_of(pair: BlindPair, choice: str) -> str:
    """The stored winner of a choice: the level behind A or B, or ``"tie"`` (a tie, or both bad)."""
    if choice not in CHOICES:
        raise ValueError(f"choice {choice!r} is not one of {list(CHOICES)}")
    if choice in ("A", "B"):
        return pair.answers[0 if choice == "A" else 1].level
    return "tie"


def vote_id(pair: BlindPair, visitor: str) -> str:
    """The stored prompt id of a vote: one vote per visitor, prompt and pair of levels."""
    raw = json.dumps([pair.key(), sorted(pair.order), visitor or ""])
    return "blind-" + hashlib.sha1(raw.encode("utf-8", "surrogatepass")).hexdigest()[:14]


def record_vote(pair: BlindPair, choice: str, visitor: str = "", merged: bool = True, con=None) -> bool:
    """Store a blind vote (judge :data:`JUDGE`) with the order shown; False when this visitor already voted on
    this pair (the first vote is kept)."""
    winner = winner_of(pair, choice)
    own = con is None
    con = con or db.connect()
    try:
        row = con.execute("SELECT id FROM eval_runs WHERE run_key=?", (RUN_KEY,)).fetchone()
        if row:
            run_id = int(row[0])
        else:
            con.execute(
                "INSERT OR IGNORE INTO eval_runs (run_key, label, prompt_set, n, seed, sampling, levels, judge, model,"
                " params, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (RUN_KEY, "Blind votes (people as judges)", "blind", 0, 0, "none", "", JUDGE, "various", "{}",
                 time.time()))
            run_id = int(con.execute("SELECT id FROM eval_runs WHERE run_key=?", (RUN_KEY,)).fetchone()[0])
        pid = vote_id(pair, visitor)
        pos = con.execute("SELECT COUNT(*) FROM eval_prompts WHERE run_id=?", (run_id,)).fetchone()[0]
        con.execute("INSERT OR IGNORE INTO eval_prompts (run_id, position, prompt_id, prompt, category, reference)"
                    " VALUES (?,?,?,?,?,?)", (run_id, pos, pid, pair.prompt, pair.task, None))
        con.commit()
        for a in pair.answers:
            db.insert_answer(con, run_id, pid, a.level, {"text": a.text, "new_tokens": a.new_tokens, "total_s": a.total_s,
                                                        "energy_j": a.energy_j, "energy_method": a.energy_method,
                                                        "model": a.model or ""})
        said = {"A": f"A ({pair.answers[0].level})", "B": f"B ({pair.answers[1].level})", "tie": "a tie",
                "both_bad": "both bad"}[choice]
        v = Verdict(JUDGE, winner, True, pair.order, raw=f"person chose {said}, blind", reason=choice,
                    details={"origin": {"source": pair.source, "run": pair.run, "prompt_id": pair.prompt_id},
                             "choice": choice})
        return db.insert_verdict(con, run_id, pid, v, visitor=visitor, merged=merged)
    finally:
        if own:
            con.close()


@dataclass(frozen=True)
class Revealed:
    """What is shown after a vote: per answer (A, B) its level, new tokens, energy, carbon, and the judges'
    pick on this prompt."""

    table: pd.DataFrame
    sentence: str


def reveal(pair: BlindPair, choice: str, settings=None) -> Revealed:
    """The reveal after a vote: levels, tokens, energy (J, with method) and carbon (g CO₂e at ``settings``,
    a :class:`~sprout_core.metered.CarbonSettings`; n/a without energy), and whether the judge agreed."""
    from sprout_core import style

    rows = []
    for a in pair.answers:
        g = None
        if settings is not None and a.energy_j is not None:
            g = settings.price_energy(a.energy_j, a.total_s or 0.0, a.energy_method).total_g
        rows.append({"answer": a.label, "level": a.level,
                     "new tokens": "n/a" if a.new_tokens is None else style.fmt_number(a.new_tokens, 3),
                     "energy": style.fmt_energy(a.energy_j, a.energy_method),
                     "carbon": "n/a" if g is None else style.fmt_grams(g)})
    winner = winner_of(pair, choice)
    said = {"A": f"you preferred A = {pair.answers[0].level}", "B": f"you preferred B = {pair.answers[1].level}",
            "tie": "you called it a tie", "both_bad": "you found both bad"}[choice]
    judge_bits = []
    for j, w in sorted(pair.judge_winners.items()):
        if w is None:
            judge_bits.append(f"{j} gave no valid verdict")
        elif w in pair.order:
            agree = "agrees" if w == winner else "disagrees"
            judge_bits.append(f"{j} picked {w} ({agree})")
        else:
            judge_bits.append(f"{j} picked {w}, a level not shown here")
    sentence = f"You saw {pair.order[0]} as A and {pair.order[1]} as B; {said}." + (
        " Judges on this prompt: " + "; ".join(judge_bits) + "." if judge_bits else "")
    return Revealed(pd.DataFrame(rows), sentence)


def people_vs_judges(con=None, tables: EvalTables | None = None, visitor: str | None = None) -> pd.DataFrame:
    """Agreement of people's blind votes with each judge on the same prompts.

    Per judge: ``votes`` (blind votes on prompts that judge judged), ``comparable`` (the judge's pick was
    one of the two levels shown and the person picked one: ties and "both bad" say no winner), ``agree``,
    ``percent`` (``None`` when nothing is comparable). Votes not merged are counted only for ``visitor``.
    """
    own = con is None
    con = con or db.connect()
    try:
        rows = con.execute(
            "SELECT j.details, j.winner, j.shown_order, j.visitor, j.merged FROM eval_judgments j JOIN eval_runs r "
            "ON r.id = j.run_id WHERE r.run_key = ? AND j.judge = ?", (RUN_KEY, JUDGE)).fetchall()
    finally:
        if own:
            con.close()
    cols = ["judge", "votes", "comparable", "agree", "percent"]
    if not rows or tables is None or tables.verdicts.empty:
        return pd.DataFrame(columns=cols)
    v = tables.verdicts
    v = v[(v["pass_no"] == 1) & (v["judge"] != JUDGE)]
    picks: dict[tuple[str, str, str], dict[str, str | None]] = {}
    for s, r, p, j, w, ok in zip(v["source"], v["run"], v["prompt_id"], v["judge"], v["winner"], v["valid"]):
        picks.setdefault((str(s), str(r), str(p)), {})[str(j)] = str(w) if ok and isinstance(w, str) else None
    stats: dict[str, list[int]] = {}
    for details, winner, shown, who, merged in rows:
        if not merged and (visitor is None or who != visitor):
            continue
        try:
            origin = json.loads(details or "{}").get("origin") or {}
            shown_levels = json.loads(shown or "[]")
        except ValueError:
            continue
        judged = picks.get((str(origin.get("source")), str(origin.get("run")), str(origin.get("prompt_id"))))
        if not judged:
            continue
        for j, w in judged.items():
            c = stats.setdefault(j, [0, 0, 0])
            c[0] += 1
            if w is not None and w in shown_levels and winner in shown_levels:
                c[1] += 1
                c[2] += int(w == winner)
    return pd.DataFrame([{"judge": j, "votes": c[0], "comparable": c[1], "agree": c[2],
                          "percent": (100.0 * c[2] / c[1]) if c[1] else None} for j, c in sorted(stats.items())],
                        columns=cols)


def merge_votes(visitor: str | None = None, con=None) -> int:
    """The operator merges visitors' votes into the shared tables (all visitors, or one); returns how many."""
    own = con is None
    con = con or db.connect()
    try:
        return db.merge_votes(con, visitor)
    finally:
        if own:
            con.close()
