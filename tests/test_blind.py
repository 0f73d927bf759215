"""Blind comparison (issue 18 item 5): unlabelled random order, votes stored with the order shown, ties and
"both bad" split the credit, a visitor's votes stay theirs until merged, agreement with the judge."""
from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from sprout_core.evaluate import db
from sprout_core.evaluate.judges import parse_judge
from sprout_core.evaluate.prompts import PromptItem
from sprout_core.evaluate.results import own_tables, shares_frame
from sprout_core.evaluate.runner import run_evaluation
from sprout_core.views import blind as B
from sprout_core.views import evaluations as VE

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = [PromptItem(id=f"m{i}", prompt=f"What is {i}+{i}?", category="math", reference=str(2 * i)) for i in range(1, 7)]


def seed_run():
    """Six judged prompts: L1 answers right (and short), L0 wrong, L2 right but long."""
    def answer(prompt, lv):
        i = int(prompt.split()[2].split("+")[0])
        text = {"L0": f"It is {2 * i + 1}.", "L1": f"{2 * i}", "L2": f"The sum is {2 * i}, since adding gives {2 * i}."}[lv]
        return {"text": text, "new_tokens": len(text.split()), "total_s": 0.2, "energy_j": 3.0, "energy_method": "estimated:test"}

    cfg = db.RunConfig(prompt_set="t", n=6, seed=0, levels=("L0", "L1", "L2"), judge="reference", model="fake")
    run_evaluation(cfg, PROMPTS, answer, parse_judge("reference"), similarity=lambda ts, ref: [0.0] * len(ts))
    return own_tables()


def test_pairs_are_two_levels_in_random_order_and_unlabelled():
    t = seed_run()
    rng = random.Random(0)
    pairs = [B.draw_pair(t, rng) for _ in range(300)]
    firsts = Counter(p.order[0] for p in pairs)
    assert all(len(set(p.order)) == 2 for p in pairs)
    assert set(firsts) == {"L0", "L1", "L2"} and min(firsts.values()) > 60  # every level shown first, about evenly
    assert all(p.judge_winners.get("reference") for p in pairs)
    assert [a.label for a in pairs[0].answers] == ["A", "B"]


def test_votes_are_stored_with_the_order_and_feed_the_estimate():
    t = seed_run()
    rng = random.Random(1)
    pair = B.draw_pair(t, rng)
    assert B.record_vote(pair, "A", visitor="v1")
    assert not B.record_vote(pair, "B", visitor="v1")  # the first vote is kept
    other = B.draw_pair(t, rng)
    assert B.record_vote(other, "both_bad", visitor="v1")
    t2 = own_tables()
    v = t2.verdicts[t2.verdicts["judge"] == B.JUDGE]
    assert len(v) == 2 and set(v["winner"]) == {pair.order[0], "tie"}
    assert ",".join(pair.order) in set(v["order"])
    sh = shares_frame(t2, ["L0", "L1", "L2"])
    people = sh[(sh["judge"] == B.JUDGE) & (sh["task"] == "all")]
    assert people["raw_share"].sum() == pytest.approx(1.0)
    # "both bad" split its credit between the two levels shown: each gets ¼ of the two votes
    tie_levels = set(other.order)
    for lv in tie_levels - {pair.order[0]}:
        assert float(people[people["level"] == lv]["raw_share"].iloc[0]) == pytest.approx(0.25)
    rev = B.reveal(pair, "A")
    assert list(rev.table["level"]) == pair.order and "you preferred A" in rev.sentence
    assert "reference picked" in rev.sentence


def test_a_visitors_votes_stay_theirs_until_merged():
    t = seed_run()
    pair = B.draw_pair(t, random.Random(2))
    B.record_vote(pair, "B", visitor="alice", merged=False)
    assert B.JUDGE not in set(own_tables().verdicts["judge"])
    assert B.JUDGE in set(own_tables(visitor="alice").verdicts["judge"])
    assert B.JUDGE not in set(own_tables(visitor="bob").verdicts["judge"])
    assert B.merge_votes() == 1
    assert B.JUDGE in set(own_tables().verdicts["judge"])


def test_people_against_the_judge_counts_votes_and_agreement():
    t = seed_run()
    rng = random.Random(3)
    n = 0
    while n < 8:
        pair = B.draw_pair(t, rng)
        ref = pair.judge_winners["reference"]
        choice = "A" if pair.order[0] == ref else ("B" if pair.order[1] == ref else "tie")
        n += B.record_vote(pair, choice, visitor=f"v{n}")
    pv = VE.people_vs_judges(own_tables())
    row = pv.set_index("judge").loc["reference"]
    assert row["votes"] == 8 and row["comparable"] <= 8 and row["agree"] == row["comparable"] > 0
    assert "100 %" in VE.people_display(pv)["agreement"].iloc[0]


def test_playground_blind_comparison_app(monkeypatch, tiny_llama2_dir):
    seed_run()
    monkeypatch.setenv("SPROUT_MODEL", str(tiny_llama2_dir))
    at = AppTest.from_file(str(ROOT / "pages/playground.py"), default_timeout=120).run()
    assert not at.exception
    at.button(key="pg.blind.new").click().run()
    assert not at.exception
    pair = at.session_state["pg.blind.pair"]
    assert pair is not None
    shown = " ".join(m.value for m in at.markdown)
    assert "Answer A" in shown and "Answer B" in shown
    assert not any(pair.order[0] in m.value and "Answer" in m.value for m in at.markdown)  # no level on screen yet
    at.button(key="pg.blind.vote.tie").click().run()
    assert not at.exception
    assert any("Vote saved" in s.value and "You saw" in s.value for s in at.success)
    revealed = at.table[0].value
    assert list(revealed["level"]) == pair.order and "carbon" in revealed.columns
    t = own_tables()
    assert list(t.verdicts[t.verdicts["judge"] == B.JUDGE]["winner"]) == ["tie"]
