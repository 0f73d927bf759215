"""The paper's judged triples: our reference judge vs GPT-4, tables, and the agreement command."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sprout_core.evaluate.reference import GPT4_JUDGE, agreement_with_gpt4, paper_tables, reference_verdicts
from tests.conftest import public_data_available

ROWS = [
    {"task": "mmlu", "prompt_index": 1, "prompt": "q (A): x (B): y", "L0": " The answer is (B): y because ...",
     "L1": " (B): y", "L2": " A", "winner": "L1", "reference_answer": "B"},
    {"task": "mmlu", "prompt_index": 2, "prompt": "q2", "L0": " (A) long", "L1": " (C)", "L2": " (A)",
     "winner": "L0", "reference_answer": "A"},
    {"task": "math", "prompt_index": 3, "prompt": "m", "L0": "so 4+4 = 8", "L1": "9", "L2": "It is 8.",
     "winner": "L2", "reference_answer": "4 plus 4 makes 8\n#### 8"},
]


def fake_encoder(texts):
    """Bag-of-characters vectors: deterministic, similar texts are close."""
    out = np.zeros((len(texts), 64))
    for i, t in enumerate(texts):
        for ch in t.lower():
            out[i, ord(ch) % 64] += 1
    return out


def test_reference_verdicts_and_agreement():
    v = reference_verdicts(ROWS, use_cache=False, similarity_encode=fake_encoder)
    assert v[("mmlu", 1)]["winner"] == "L1"  # L0 and L1 correct, L1 shorter
    assert v[("mmlu", 2)]["winner"] == "L2"  # L0 and L2 correct, L2 shorter
    assert v[("math", 3)]["winner"] in ("L0", "L2")  # both right; similarity decides
    per = {a.task: a for a in agreement_with_gpt4(ROWS, v)}
    assert per["mmlu"].agreement.n == 2 and per["mmlu"].agreement.agree == 1
    assert per["all"].agreement.n == 3
    assert per["mmlu"].gpt4_shares == {"L0": 0.5, "L1": 0.5, "L2": 0.0}


@pytest.mark.skipif(not public_data_available("llama2-13b-a100", "responses.jsonl"), reason="paper data absent")
def test_paper_tables_carry_reference_energy():
    t = paper_tables(None, with_reference_judge=False)
    assert len(t.prompts) == 12000 and len(t.answers) == 36000
    assert set(t.verdicts["judge"]) == {GPT4_JUDGE}
    e = t.answers["energy_j"]
    assert e.notna().all() and (t.answers["energy_method"] == "reference:sprout-paper").all()
    # pooled L0 mean ≈ 0.336 Wh per request in the paper's notes (judged subset: same order of magnitude)
    l0 = t.answers[t.answers["level"] == "L0"]["energy_j"].mean() / 3600
    assert 0.2 < l0 < 0.6


@pytest.mark.skipif(not public_data_available("llama2-13b-a100", "responses.jsonl"), reason="paper data absent")
def test_agreement_command_json(capsys):
    from sprout_core.cli import main

    assert main(["agreement", "--source", "llama2-13b-a100", "--judge", "reference", "--tasks", "mmlu", "--limit", "30", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    per = {r["task"]: r for r in rep["per_task"]}
    assert per["mmlu"]["n"] == 30 and 0 <= per["mmlu"]["agreement_percent"] <= 100
    # letters are extracted: Llama-2 gets most MMLU letters right under L0
    assert rep["exact_match_correct_share"]["mmlu"]["L0"] > 0.3
    assert main(["agreement", "--tasks", "nope"]) == 2


def test_batched_verdicts_equal_per_row_judging():
    """Embedding only the tied-at-the-top answers gives the same winners as judging each row in full."""
    from sprout_core.evaluate.judges import judge_reference

    rows = ROWS + [
        {"task": "trivia", "prompt_index": 9, "prompt": "p", "L0": "It is Paris, France", "L1": "Paris", "L2": "Lyon",
         "winner": "L1", "reference_answer": "Paris; Paris, France"},
        {"task": "alpaca", "prompt_index": 10, "prompt": "p", "L0": "Dogs are loyal pets.", "L1": "Cats purr.",
         "L2": "A dog is a loyal pet animal.", "winner": "L2", "reference_answer": "A dog is a loyal animal kept as a pet by people."},
    ]
    batched = reference_verdicts(rows, use_cache=False, similarity_encode=fake_encoder)

    def full_sim(texts, ref):
        v = fake_encoder(list(texts) + [ref])
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        return [float(x @ v[-1]) for x in v[:-1]]

    for r in rows:
        one = judge_reference({lv: r[lv] for lv in ("L0", "L1", "L2")}, r["reference_answer"], similarity=full_sim)
        assert batched[(r["task"], r["prompt_index"])]["winner"] == one.winner, r["task"]
