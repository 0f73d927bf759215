"""The Evaluations view: judge explanations, counts (judged / invalid / no reference / not judged), winners."""
import pandas as pd

from sprout_core import style
from sprout_core.evaluate.results import ANSWER_COLS, PROMPT_COLS, VERDICT_COLS, EvalTables
from sprout_core.views import evaluations as V


def tables():
    P = pd.DataFrame([("own", "r", p, "math", "q", None) for p in ("a", "b", "c", "d", "e")], columns=PROMPT_COLS)
    V_ = pd.DataFrame([
        ("own", "r", "a", "reference", 1, "L1", True, "L0,L1", "[number] → L1"),
        ("own", "r", "b", "reference", 1, None, False, "L0,L1", "no reference answer"),
        ("own", "r", "c", "reference", 1, "L0", True, "L0,L1", "[number] → L0"),
        ("own", "r", "a", "llm:x", 1, None, False, "L1,L0", "I like both"),
        ("own", "r", "a", "llm:x", 2, "L0", True, "L0,L1", "Output (1)"),
        ("own", "r", "c", "llm:x", 1, "L0", True, "L1,L0", "Output (2)"),
    ], columns=VERDICT_COLS)
    return EvalTables(P, pd.DataFrame(columns=ANSWER_COLS), V_)


def test_counts_split_the_prompts_that_were_not_judged():
    t = tables()
    ref = V.judge_counts(t, "reference")
    assert (ref.prompts, ref.judged, ref.no_reference, ref.invalid, ref.not_judged) == (5, 2, 1, 0, 2)
    assert "2 of 5 prompts judged" in ref.sentence() and "1 has no reference answer" in ref.sentence()
    llm = V.judge_counts(t, "llm:x")  # pass 2 does not count
    assert (llm.judged, llm.invalid, llm.no_reference, llm.not_judged) == (1, 1, 0, 3)
    assert "1 got an invalid verdict" in llm.sentence()


def test_every_judge_is_explained_with_its_tie_rule():
    assert "tie goes to the **shorter answer**" in V.judge_explanation("reference")
    assert "no ties" in V.judge_explanation("gpt-4-0613 (paper)")
    assert "identical" in V.judge_explanation("gpt-4-0613 (paper)")
    assert "invalid" in V.judge_explanation("llm:/models/x") and "too weak" in V.judge_explanation("llm:embedded")
    assert "first is kept" in V.judge_explanation("human")
    assert V.judge_explanation("someone")


def test_winner_marks_and_chart_colours():
    t = tables()
    wins = V.winners(t, "r", "a")
    assert wins == {"reference": "L1", "llm:x": None}
    assert V.winner_note("L1", wins, "reference") == "best (reference)"
    assert V.winner_note("L0", wins, "reference") == ""
    assert V.winner_note("L0", V.winners(t, "r", "c"), "llm:x") == "best (llm:x), also reference"
    shares = pd.DataFrame({"task": ["all", "all"], "level": ["L0", "L2"], "share": [0.4, 0.6], "ci_low": [0.3, 0.5],
                           "ci_high": [0.5, 0.7], "n_valid": [10, 10], "n_invalid": [0, 0]})
    fig = V.share_figure(shares, ["L0", "L2"])
    assert {tr.offsetgroup: tr.marker.color for tr in fig.data} == {"L0": style.level_color("L0"), "L2": style.level_color("L2")}
    # controlled bars come with the raw share as a marker
    shares = shares.assign(controlled=True, raw_share=[0.5, 0.5])
    fig = V.share_figure(shares, ["L0", "L2"])
    assert [tr.name for tr in fig.data] == ["L0 controlled", "L0 raw", "L2 controlled", "L2 raw"]
    value, note = V.share_metric(next(shares.itertuples()))
    assert value == "40.0 %" and note.startswith("raw 50.0 %") and "95 % CI 30–50 %" in note


def test_judge_bias_panel_names_the_length_effect_and_the_ties():
    from sprout_core.evaluate.reference import reference_quality

    bias = V.judge_bias(reference_quality(control=True))
    t = bias.table.set_index("task")
    assert set(t.index) == {"alpaca", "math", "mmlu", "naturalqa", "scienceqa", "triviaqa"}
    assert t.loc["alpaca", "length effect"].startswith("+0.21")
    assert t.loc["scienceqa", "length effect"].startswith("-0.32")
    assert "order not stored" in t.loc["math", "position effect"]
    assert "→" in t.loc["alpaca", "L0"]
    text = " ".join(bias.sentences)
    assert "**longer** answers in alpaca" in text and "math" in text and "**shorter** answers in" in text
    assert "cannot be measured" in text and not bias.position_known


def test_prompt_table_key_columns_first():
    cols = ["source", "run", "prompt_id", "task", "prompt", "winner · reference", "L0 tokens", "L1 tokens",
            "L0 energy (J)", "L1 energy (J)", "energy method"]
    order = V.prompt_columns(pd.DataFrame(columns=cols))
    assert order[:4] == ["prompt_id", "task", "prompt", "winner · reference"]
    assert order[-2:] == ["run", "source"] and sorted(order) == sorted(cols)
