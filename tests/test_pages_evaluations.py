"""AppTest: the Evaluations page browses own runs, filters, shows details and agreement, and hands q over."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from sprout_core.evaluate import db
from sprout_core.evaluate.judges import JudgeSpec, parse_judge
from sprout_core.evaluate.prompts import PromptItem
from sprout_core.evaluate.runner import judge_existing_run, run_evaluation
from tests.conftest import public_data_available

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages/evaluations.py")

PROMPTS = [PromptItem("m1", "What is 2+3?", "math", "5"), PromptItem("m2", "What is 10-4?", "math", "6"),
           PromptItem("f1", "Capital of France?", "factual", "Paris"), PromptItem("w1", "Write a haiku about rain.", "writing")]


def seed_run():
    texts = {"L0": "Well, let me explain in detail: the answer is {r}.", "L1": "{r}", "L2": "zebra"}
    refs = {p.prompt: p.reference or "drops" for p in PROMPTS}

    def answer(prompt, level):
        return {"text": texts[level].format(r=refs[prompt]), "new_tokens": {"L0": 12, "L1": 3, "L2": 1}[level],
                "total_s": 0.5, "energy_j": {"L0": 6.0, "L1": 1.5, "L2": None}[level],
                "energy_method": "estimated:cpu-tdp" if level != "L2" else "n/a"}

    cfg = db.RunConfig(prompt_set="t", n=4, seed=0, levels=("L0", "L1", "L2"), judge="reference", model="fake")
    st = run_evaluation(cfg, PROMPTS, answer, parse_judge("reference"),
                        similarity=lambda ts, ref: [1.0 if ref in t else 0.0 for t in ts])
    # a second (fake) LLM judge that always picks the first answer it sees, twice
    judge_existing_run(st.run_id, JudgeSpec("llm:fake", "llm", second_pass=True), judge_chat=lambda m: "Output (1)", seed=2)
    return st.run_id


@pytest.fixture
def via_app():
    """AppTest of app.py (needed for st.switch_page); pages route through its st.navigation."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    return at


def page_app():
    return AppTest.from_file(PAGE, default_timeout=90)


@pytest.fixture(autouse=True)
def no_shipped(monkeypatch, tmp_path):
    """Hide data/evaluations so tests see only what they seed."""
    from sprout_core.evaluate import results

    monkeypatch.setattr(results, "evaluations_dir", lambda: tmp_path / "none")


def test_empty_own_source_says_how_to_start():
    at = page_app().run()
    assert not at.exception
    assert any("No evaluation runs yet" in i.value for i in at.info)


def test_own_run_table_filters_detail_agreement():
    seed_run()
    at = page_app().run()
    assert not at.exception, at.exception
    df = at.dataframe[0].value
    assert len(df) == 4 and "L0 tokens" in df.columns and "L0 energy (J)" in df.columns
    assert (df["L2 energy (J)"] == "n/a").all()  # n/a stays n/a, never 0
    at.selectbox(key="ev.judge").set_value("reference").run()
    metrics = {m.label: m.value for m in at.metric}
    # L1 is correct and shortest on the three prompts with a reference; w1 has none (invalid, excluded)
    assert metrics["q L1"] == "100.0 %" and metrics["Prompts judged"] == "3"
    assert {m.label: m.delta for m in at.metric}["Prompts judged"] == "of 4 prompts"
    assert any("3 of 4 prompts judged" in md.value and "1 has no reference answer" in md.value for md in at.markdown)
    assert any("tie goes to the **shorter answer**" in i.value for i in at.info)  # the judge is explained on the page
    at.multiselect(key="ev.tasks").set_value(["math"]).run()
    assert len(at.dataframe[0].value) == 2
    at.multiselect(key="ev.tasks").set_value([]).run()
    at.text_input(key="ev.text").input("france").run()
    assert list(at.dataframe[0].value["prompt_id"]) == ["f1"]
    # detail: answers side by side, verdicts with the order seen
    verdicts = at.dataframe[1].value
    assert set(verdicts["judge"]) == {"reference", "llm:fake"} and "order the judge saw" in verdicts.columns
    assert any("Paris" in md.value for md in at.markdown)  # answers as readable text, not disabled boxes
    assert any("best (reference)" in md.value for md in at.markdown)  # the winner is marked
    at.text_input(key="ev.text").input("no such words anywhere").run()
    assert any("No prompts match" in i.value for i in at.info)
    at.text_input(key="ev.text").input("").run()
    # two judges → agreement heatmap, and the fake LLM judge's position consistency table
    assert len(at.get("plotly_chart")) == 2
    assert any("position consistency" in d.value.columns for d in at.dataframe)


def test_winner_filter_and_handoff(via_app):
    seed_run()
    at = via_app
    at.switch_page("pages/evaluations.py").run()
    assert not at.exception, at.exception
    at.selectbox(key="ev.judge").set_value("reference").run()
    at.selectbox(key="ev.winner").set_value("L1").run()
    assert len(at.dataframe[0].value) == 3
    at.selectbox(key="ev.winner").set_value("any").run()
    at.button(key="ev.handoff").click().run()
    h = at.session_state["sprout.q_handoff"]
    assert h.judge == "reference" and h.n == 3 and h.q["L1"] == 1.0
    assert set(h.per_task) == {"math", "factual"}
    # the switch happened: the Optimizer page ran (its title is on screen) with the hand-off in the session
    assert any("Optimizer" in t.value for t in at.title)


def test_optimizer_accepts_a_handoff_where_L0_never_won(via_app):
    seed_run()
    at = via_app
    at.switch_page("pages/evaluations.py").run()
    at.selectbox(key="ev.judge").set_value("reference").run()
    at.button(key="ev.handoff").click().run()
    assert at.session_state["sprout.q_handoff"].q["L0"] == 0.0
    assert not at.exception


def test_run_panel_needs_a_file_for_upload():
    at = page_app().run()
    assert not at.button(key="ev.run.start").disabled
    at.selectbox(key="ev.run.set").set_value("upload a file…").run()
    assert not at.exception and at.button(key="ev.run.start").disabled


def test_run_panel_local_judge_folder_is_checked_before_starting(tmp_path):
    at = page_app().run()
    at.selectbox(key="ev.run.judge").set_value("llm (local model folder)").run()
    at.text_input(key="ev.run.judge_folder").input(str(tmp_path / "no-judge-here")).run()
    at.button(key="ev.run.start").click().run()
    assert not at.exception
    assert any("Cannot start" in e.value and "no such folder" in e.value for e in at.error)
    assert "eval.job" not in at.session_state  # nothing was started


@pytest.mark.skipif(not public_data_available("llama2-13b-a100", "responses.jsonl"), reason="paper data absent")
def test_paper_source():
    at = page_app().run()
    at.radio(key="ev.source").set_value("paper").run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Prompts judged"] == "12000"
    # GPT-4's pooled L0 share, length-controlled: (46.4+40.4+32.2+34.9+37.1+36.1)/6 ≈ 37.9 %; raw ≈ 38.1 %
    assert metrics["q L0"].startswith("37.9")
    assert any("raw 38.1 %" in str(m.proto.delta) or "raw 38.1" in str(m) for m in at.metric)
    # the judge-bias panel: the length effect per task, with a sentence
    assert any("**longer** answers in alpaca" in md.value for md in at.markdown)
    bias = at.table[0].value
    assert str(bias.loc["scienceqa", "length effect"]).startswith("-0.32")
    assert (at.dataframe[0].value["L0 energy (J)"] != "n/a").all()
    at.multiselect(key="ev.tasks").set_value(["mmlu"]).run()
    assert {m.label: m.value for m in at.metric}["q L1"].startswith("35.1")  # controlled (raw 36.9 %)


def test_playground_vote_is_stored_as_human_verdict(monkeypatch, tiny_llama2_dir):
    monkeypatch.setenv("SPROUT_MODEL", str(tiny_llama2_dir))
    at = AppTest.from_file(str(ROOT / "pages/playground.py"), default_timeout=120).run()
    at.text_area(key="pg.prompt").input("what is the capital of france")
    at.number_input(key="pg.max_new").set_value(4)
    at.button(key="pg.run").click().run()
    assert not at.exception
    assert at.button(key="pg.vote.save").disabled  # nothing chosen yet
    at.radio(key="pg.vote").set_value("L1").run()
    at.button(key="pg.vote.save").click().run()
    assert not at.exception and any("Vote saved" in s.value for s in at.success)
    from sprout_core.evaluate.results import own_tables

    t = own_tables()
    assert list(t.verdicts["judge"]) == ["human"] and list(t.verdicts["winner"]) == ["L1"]
    assert sorted(t.answers["level"]) == ["L0", "L1", "L2"] and t.answers["new_tokens"].max() == 4
    assert len(t.prompts) == 1 and "capital of france" in t.prompts["prompt"].iloc[0]


def test_run_started_from_the_page_finishes_in_background(monkeypatch, tiny_llama2_dir):

    monkeypatch.setenv("SPROUT_MODEL", str(tiny_llama2_dir))
    at = page_app().run()
    at.number_input(key="ev.run.n").set_value(2)
    at.number_input(key="ev.run.max_new").set_value(8)
    at.button(key="ev.run.start").click().run()
    assert not at.exception, at.exception
    job = at.session_state["eval.job"]
    job.thread.join(180)
    assert job.progress.finished and job.progress.error is None and job.progress.done == 6
    at.run()
    assert not at.exception
    assert any("Run finished: 6 answers" in s.value for s in at.success)
    assert len(at.dataframe[0].value) == 2  # both prompts now in the table
    # starting the same settings again resumes: nothing new to generate
    at.button(key="ev.run.start").click().run()
    job2 = at.session_state["eval.job"]
    job2.thread.join(60)
    assert job2.progress.skipped == 6 and job2.progress.done == 6


def test_newest_run_is_shown_by_default_and_runs_can_be_pooled():
    seed_run()
    cfg = db.RunConfig(prompt_set="t2", n=1, seed=0, levels=("L0", "L1", "L2"), judge="reference", model="fake")
    run_evaluation(cfg, PROMPTS[:1], lambda p, lv: {"text": "5", "new_tokens": 1, "total_s": 0.1},
                   parse_judge("reference"), similarity=lambda ts, ref: [0.0] * len(ts))
    at = page_app().run()
    assert not at.exception
    assert at.selectbox(key="ev.run").value.startswith("#2 ")
    assert len(at.dataframe[0].value) == 1
    at.selectbox(key="ev.run").set_value("all runs (pooled)").run()
    assert len(at.dataframe[0].value) == 5


def test_human_verdict_on_a_stored_run_joins_the_agreement():
    seed_run()
    at = page_app().run()
    [s for s in at.selectbox if s.key and s.key.startswith("ev.detail.")][0].set_value(0).run()  # m1: reference picked L1
    radio = [r for r in at.radio if r.key and r.key.startswith("ev.vote.")][0]
    radio.set_value("L0").run()
    at.button(key="ev.vote.save").click().run()
    assert not at.exception
    at.selectbox(key="ev.judge").set_value("human").run()
    from sprout_core.evaluate.results import agreement_frame, own_tables

    t = own_tables()
    assert list(t.verdicts[t.verdicts["judge"] == "human"]["winner"]) == ["L0"]
    ag = agreement_frame(t).set_index(["judge_a", "judge_b"])
    assert ag.loc[("human", "reference"), "n"] == 1 and ag.loc[("human", "reference"), "percent"] == 0.0
    # a second vote on the same prompt keeps the first
    from sprout_core.evaluate.results import add_human_verdict

    assert add_human_verdict(1, "m1", "L2", ["L0", "L1", "L2"]) is False


def test_prompt_selector_starts_over_when_the_source_changes_and_replies_are_shown_in_full():
    seed_run()
    at = page_app().run()
    detail = [s for s in at.selectbox if s.key and s.key.startswith("ev.detail.")]
    assert len(detail) == 1
    detail[0].set_value(1).run()
    assert not at.exception
    # the judge's reply is shown in full (wrapped text), not cut in a table cell
    assert any(e.label.startswith("Reply of reference") for e in at.expander)
    at.radio(key="ev.source").set_value("paper").run()
    assert not at.exception
    detail = [s for s in at.selectbox if s.key and s.key.startswith("ev.detail.")]
    assert len(detail) == 1 and detail[0].value == 0  # not the old list's second prompt


def test_bias_panel_and_flip_rate_of_an_llm_judge_judged_twice():
    seed_run()
    at = page_app().run()
    at.selectbox(key="ev.judge").set_value("llm:fake").run()
    assert not at.exception
    # the fake judge always picks the answer shown first: the order is stored, so the position effect is fitted
    # (too few prompts for the fit: n/a, said so), and every pair of passes flipped
    bias = at.table[0].value
    assert "n/a" in str(bias.iloc[0]["length effect"])
    assert any("order shown is stored" in m.value for m in at.markdown)
    flips = [d.value for d in at.dataframe if "flip rate" in d.value.columns][0]
    assert "100 %" in set(flips["flip rate"])
    from sprout_core.evaluate.results import run_summary

    assert run_summary(1)["flip_rate"]["llm:fake"]["rate"] == 1.0
