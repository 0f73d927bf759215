"""Judges: strict parser, exact-match helpers, reference judge ordering, LLM judge, HTTP backend."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from sprout_core.evaluate.judges import (
    OpenAIChat,
    choice_letter,
    final_number,
    is_correct,
    judge_llm,
    judge_reference,
    load_judge_prompt,
    parse_best_of,
    parse_judge,
    position_consistency,
    reference_kind,
    rotated,
    shuffled_order,
)


@pytest.mark.parametrize("reply,n,want", [
    ("Output (2)", 3, 2),
    ("  output(1).\n", 3, 1),
    ("**Output (3)**", 3, 3),
    ("Output (4)", 3, None),
    ("Output (0)", 3, None),
    ("I think Output (2) is best", 3, None),
    ("Output (1)\nbut Output (2) is also good", 3, None),
    ("Output (1)\nOutput (1) is clearly correct", 3, 1),
    ("", 3, None),
    ("The best answer is 2", 3, None),
])
def test_parse_best_of(reply, n, want):
    assert parse_best_of(reply, n) == want


def test_number_and_letter_extraction():
    assert final_number("She pays 12 and gets $8 back.") == 8
    assert final_number("Work: 2*3=6\n#### 1,200") == 1200
    assert final_number("no digits") is None
    assert choice_letter("The correct answer is (C): a relict boundary.") == "C"
    assert choice_letter(" C) relict boundary.") == "C"
    assert choice_letter("B: The child's family.") == "B"
    assert choice_letter("Answer: D") == "D"
    assert choice_letter("I am not sure.") is None


def test_reference_kinds_and_correctness():
    assert reference_kind("B") == "letter" and reference_kind("42") == "number"
    assert reference_kind("x\n#### 5") == "number" and reference_kind("Jane Austen") == "short"
    assert reference_kind("A long free text reference answer with many many words in it.") == "text"
    assert is_correct("The answer is 8 dollars.", "8") is True
    assert is_correct("The answer is 9.", "8") is False
    assert is_correct("It was written by Jane Austen.", "Jane Austen") is True
    assert is_correct("Emily Bronte", "Jane Austen") is False
    assert is_correct("Ottawa", "paris; ottawa") is True
    assert is_correct("whatever", "A long free text reference answer with many many words in it.") is None


def _no_sim(texts, ref):
    raise AssertionError("similarity must not be used for bare numbers/letters")


def test_reference_judge_correct_first_then_shorter():
    v = judge_reference({"L0": "Let me think... 3 muffins cost 9, so change is 11.", "L1": "Change: $8.",
                         "L2": "The change is 8 dollars, since 4 x 3 = 12 and 20 - 12 = 8."}, "8", similarity=_no_sim)
    assert v.valid and v.winner == "L1"
    assert v.details["L0"]["correct"] is False and v.details["L2"]["correct"] is True
    # all wrong → shortest wins; identical → the higher level
    v = judge_reference({"L0": "7 apples", "L1": "I believe it is 9", "L2": "7 apples"}, "8", similarity=_no_sim)
    assert v.winner == "L2"


def test_reference_judge_similarity_breaks_correctness_tie():
    sims = {"a": 0.9, "b": 0.5, "c": 0.2}
    v = judge_reference({"L0": "a", "L1": "b", "L2": "c"}, "a reference sentence that is long enough to be text",
                        similarity=lambda texts, ref: [sims[t] for t in texts])
    assert v.winner == "L0" and v.details["L0"]["similarity"] == 0.9


def test_reference_judge_without_reference_is_invalid():
    v = judge_reference({"L0": "x", "L1": "y"}, None)
    assert not v.valid and v.winner is None


def test_orders_seeded_and_rotation_moves_every_answer():
    o1 = shuffled_order(["L0", "L1", "L2"], 7, "p1")
    assert o1 == shuffled_order(["L0", "L1", "L2"], 7, "p1") and sorted(o1) == ["L0", "L1", "L2"]
    r = rotated(o1)
    assert all(a != b for a, b in zip(o1, r)) and sorted(r) == sorted(o1)


def test_judge_prompt_file_renders():
    p = load_judge_prompt()
    msgs = p.messages("Say hi", ["hello", "hi", ""])
    user = msgs[-1]["content"]
    assert "Say hi" in user and "Output (3)" in user and "(empty answer)" in user and "1, 2, 3" in user
    assert "{" not in user and "how long it is" in user


def test_judge_llm_maps_positions_and_stores_invalid():
    answers = {"L0": "long answer", "L1": "mid", "L2": "short"}
    seen = []

    def chat(msgs):  # always picks the answer "mid", wherever it is shown
        seen.append(msgs)
        body = msgs[-1]["content"]
        for k in (1, 2, 3):
            if f"## Output ({k})\nmid" in body:
                return f"Output ({k})"
        return "?"

    vs = judge_llm("q", answers, chat, "fake", seed=3, key="p", second_pass=True)
    assert [v.winner for v in vs] == ["L1", "L1"] and vs[0].order != vs[1].order
    assert position_consistency([(vs[0], vs[1])]) == (1, 1, 1.0)
    bad = judge_llm("q", answers, lambda m: "I like them all", "fake", seed=3, key="p")
    assert not bad[0].valid and bad[0].winner is None and bad[0].raw == "I like them all"

    def boom(m):
        raise TimeoutError("slow")

    err = judge_llm("q", answers, boom, "fake")
    assert not err[0].valid and "slow" in err[0].raw


class _Handler(BaseHTTPRequestHandler):
    calls: list = []
    fail_first = 0

    def do_POST(self):  # noqa: N802 - http.server's method name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append((self.path, self.headers.get("Authorization"), body))
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        out = json.dumps({"choices": [{"message": {"role": "assistant", "content": "Output (2)"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *a):
        pass


@pytest.fixture
def server():
    _Handler.calls = []
    _Handler.fail_first = 0
    srv = HTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_openai_backend_against_local_server(server, monkeypatch):
    monkeypatch.setenv("TEST_JUDGE_KEY", "sekret")
    base = f"http://127.0.0.1:{server.server_address[1]}/v1"
    _Handler.fail_first = 1  # one 503, then success: retried
    chat = OpenAIChat(base, "judge-model", api_key_env="TEST_JUDGE_KEY", timeout_s=5, retries=2, backoff_s=0.01)
    vs = judge_llm("q", {"L0": "a", "L1": "b", "L2": "c"}, chat, "api:judge-model", seed=0, key="k",
                   second_pass=False)
    assert len(vs) == 1 and vs[0].valid and vs[0].winner == vs[0].order[1]
    path, auth, body = _Handler.calls[-1]
    assert path == "/v1/chat/completions" and auth == "Bearer sekret"
    assert body["model"] == "judge-model" and body["temperature"] == 0 and body["messages"][-1]["role"] == "user"
    assert len(_Handler.calls) == 2


def test_openai_backend_gives_up_cleanly():
    chat = OpenAIChat("http://127.0.0.1:9/v1", "m", timeout_s=0.5, retries=1, backoff_s=0.01)
    with pytest.raises(RuntimeError, match="failed after 2 tries"):
        chat([{"role": "user", "content": "x"}])


def test_parse_judge_names(monkeypatch):
    assert parse_judge("reference").kind == "reference"
    assert "too weak" in parse_judge("llm").note
    monkeypatch.delenv("SPROUT_JUDGE_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="BASE_URL"):
        parse_judge("api:gpt")
    monkeypatch.setenv("SPROUT_JUDGE_BASE_URL", "http://127.0.0.1:1/v1")
    assert parse_judge("api:gpt").base_url.endswith("/v1")
    with pytest.raises(ValueError, match="Unknown judge"):
        parse_judge("oracle")


def test_llm_judges_judge_twice_by_default_and_a_disagreement_is_a_tie():
    import pandas as pd

    from sprout_core.evaluate.shares import quality_estimate

    assert parse_judge("llm").second_pass and not parse_judge("llm", second_pass=False).second_pass
    answers = {"L0": "long answer", "L1": "mid", "L2": "short"}
    first = lambda msgs: "Output (1)"  # noqa: E731 - always the answer shown first: flips with the order
    vs = judge_llm("q", answers, first, "fake", seed=3, key="p")
    assert [v.pass_no for v in vs] == [1, 2] and vs[0].winner != vs[1].winner
    df = pd.DataFrame({"task": "t", "prompt_id": "p", "judge": "fake", "winner": [v.winner for v in vs],
                       "order": [",".join(v.order) for v in vs]})
    ts = quality_estimate(df, "fake", control=False, levels=list(answers)).tasks["t"]
    assert ts.ties == 1 and sorted(s.raw_pct for s in ts.levels.values()) == [0.0, 50.0, 50.0]


def _fake_judge_run(fake, monkeypatch, prompts=3):
    from sprout_core.evaluate import db
    from sprout_core.evaluate.prompts import PromptItem
    from sprout_core.evaluate.runner import make_judge_chat, run_evaluation

    monkeypatch.setenv("SPROUT_JUDGE_BASE_URL", fake.url)
    spec = parse_judge("api:judge-model")
    chat = make_judge_chat(spec)
    chat.retries, chat.backoff_s = 1, 0.01
    items = [PromptItem(id=f"p{i}", prompt=f"question {i}", category="fact", reference=None) for i in range(prompts)]
    cfg = db.RunConfig(prompt_set="t", n=prompts, seed=0, levels=("L0", "L1"), judge=spec.name, model="fake")
    return run_evaluation(cfg, items, lambda p, lv: {"text": f"{lv} says {p}", "new_tokens": 3, "total_s": 0.1},
                          spec, chat)


def test_judge_stops_at_the_first_authentication_error_and_keeps_the_answers(monkeypatch):
    from sprout_core.evaluate import db
    from sprout_core.evaluate.judges import JudgeStopError
    from tests.fake_openai import FakeOpenAI

    fake = FakeOpenAI(key="right-key").start()
    try:
        monkeypatch.setenv("SPROUT_JUDGE_API_KEY", "wrong-key")
        with pytest.raises(JudgeStopError, match="HTTP 401.*SPROUT_JUDGE_API_KEY.*kept"):
            _fake_judge_run(fake, monkeypatch)
        assert len(fake.requests) == 1  # no retries, no further prompts: the first refusal stops the run
    finally:
        fake.stop()
    con = db.connect()
    try:
        run_id = db.list_runs(con)[0]["id"]
        assert len(db.stored_answers(con, run_id)) == 2  # the first prompt's answers are kept
        assert db.stored_judgments(con, run_id) == set()  # and no invalid verdict was stored
    finally:
        con.close()


def test_judge_stops_when_the_quota_is_used_up(monkeypatch):
    from sprout_core.errors import SproutError
    from sprout_core.evaluate.judges import JudgeStopError
    from tests.fake_openai import FakeOpenAI

    fake = FakeOpenAI().start()
    fake.mode = "quota"
    try:
        with pytest.raises(JudgeStopError, match="quota") as info:
            _fake_judge_run(fake, monkeypatch)
        assert isinstance(info.value, SproutError) and len(fake.requests) == 1
    finally:
        fake.stop()


def test_flip_rate_is_stored_per_judge_and_task():
    from sprout_core.evaluate import db
    from sprout_core.evaluate.prompts import PromptItem
    from sprout_core.evaluate.results import run_summary
    from sprout_core.evaluate.runner import run_evaluation

    items = [PromptItem(id=f"p{i}", prompt=f"q{i}", category="math" if i % 2 else "fact", reference=None)
             for i in range(6)]
    cfg = db.RunConfig(prompt_set="t", n=6, seed=0, levels=("L0", "L1", "L2"), judge="llm:fake", model="fake")
    spec = parse_judge("llm")

    def chat(msgs):  # picks "L0 …" wherever shown on math prompts; the first shown on the others
        body = msgs[-1]["content"]
        if "q1" in body or "q3" in body or "q5" in body:
            for k in (1, 2, 3):
                if f"## Output ({k})\nL0" in body:
                    return f"Output ({k})"
        return "Output (1)"

    run_evaluation(cfg, items, lambda p, lv: {"text": f"{lv} {p}", "new_tokens": 2, "total_s": 0.1}, spec, chat)
    s = run_summary(1)
    fr = s["flip_rate"][spec.name]
    assert fr["pairs"] == 6 and fr["flips"] == 3 and fr["rate"] == 0.5
    assert fr["by_task"]["math"]["rate"] == 0.0 and fr["by_task"]["fact"]["rate"] == 1.0
