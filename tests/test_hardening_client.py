"""A server client that never hangs and never believes nonsense (issue 20.4): a client-side token cap, idle
and total timeouts whatever the server does, usage counts checked, a message that names what happened, and
every "kept" in a message true (the partial answer is stored, by the CLI path and by ``evaluate``)."""
from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from sprout_core.directives import Directive
from sprout_core.generation import GenerationParams, generate
from sprout_core.serving import client as C
from sprout_core.serving.client import ServerConfig, ServerModel, token_cap
from sprout_core.serving.sse import EventTooLarge, SSEParser, checked_usage
from tests.fake_openai import FakeOpenAI

L0 = Directive("L0", "")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def fake():
    f = FakeOpenAI().start()
    yield f
    f.stop()


def _gen(fake, mode, max_new_tokens=16, limit_s=60.0, **cfg):
    """Generate in a thread; the test fails (instead of hanging) when the client does not come back."""
    srv = ServerModel.connect(ServerConfig(fake.url, **cfg))
    fake.mode = mode
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", generate(srv, "Why?", L0,
                                                                     GenerationParams(max_new_tokens=max_new_tokens))),
                         daemon=True)
    t.start()
    t.join(limit_s)
    assert not t.is_alive(), f"the client hung on a {mode!r} server"
    return out["r"]


def test_a_server_that_ignores_max_tokens_is_cut_by_the_client(fake):
    r = _gen(fake, "forever", max_new_tokens=16)
    assert r.new_tokens <= token_cap(16) + 1 and r.partial and r.text.startswith("w0 w1")
    assert r.error.startswith("Cut by Sprout") and "ignores max_tokens" in r.error
    assert r.extra["server_problem"] == "cut" and "is kept" in r.error
    assert token_cap(16) == 32 and token_cap(1000) == 1100


def test_an_endless_line_is_malformed_not_a_hang(fake):
    r = _gen(fake, "endless_line")
    assert r.error.startswith("Malformed") and r.extra["server_problem"] == "malformed"


def test_broken_json_mid_answer_is_malformed_and_keeps_the_words(fake):
    r = _gen(fake, "malformed")
    assert r.error.startswith("Malformed: after 3 tokens") and r.partial and r.text == "The sky is"


@pytest.mark.parametrize("mode", ["stall_headers", "keepalive", "stall"])
def test_a_stall_says_stalled_never_cannot_reach(fake, mode):
    fake.stall_s = 4.0
    r = _gen(fake, mode, timeout_s=0.6)
    assert r.error.startswith("Stalled") and "Cannot reach" not in r.error
    assert r.extra["server_problem"] == "stalled"
    assert ("before the first token" in r.error) == (mode == "stall_headers")


def test_the_total_timeout_ends_a_trickling_answer(fake):
    fake.words = [f" t{i}" for i in range(400)]
    fake.delay_s = 0.02
    r = _gen(fake, "ok", max_new_tokens=400, timeout_s=5.0, total_timeout_s=0.4)
    assert r.error.startswith("Too slow") and r.partial and 0 < r.new_tokens < 400


def test_a_refused_connection_says_so():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(Exception, match="connection refused"):
        ServerModel.connect(ServerConfig(f"http://127.0.0.1:{port}/v1", model="m"))


@pytest.mark.parametrize("mode, given", [("usage_negative", -5), ("usage_huge", 10**15)])
def test_implausible_usage_is_stored_as_unknown_with_a_note(fake, mode, given):
    r = _gen(fake, mode)
    assert r.error is None and r.prompt_tokens is None
    assert r.new_tokens == 9  # the streamed chunks, the server's count dropped
    assert "implausible" in r.extra["token_count"] and str(given) in " ".join(r.extra["usage_notes"])


def test_plausible_usage_is_believed(fake):
    r = _gen(fake, "usage")
    assert (r.prompt_tokens, r.new_tokens, r.extra["token_count"]) == (21, 10, "server usage")


@pytest.mark.parametrize("pt, ct, ok", [
    (21, 10, (21, 10)), (-1, 10, (None, 10)), (21, -1, (21, None)), (10**15, 10**15, (None, None)),
    (0, 0, (0, None)),          # nothing counted for 9 streamed chunks: impossible
    (4090, 60, (None, None)),   # over the 4,096-token context together
    (None, None, (None, None)),
])
def test_checked_usage_bounds(pt, ct, ok):
    c = checked_usage(pt, ct, streamed_chunks=9, streamed_bytes=44, request_bytes=5000, context_len=4096)
    assert (c.prompt_tokens, c.completion_tokens) == ok
    assert bool(c.notes) == (ok != (pt, ct))


def test_the_sse_parser_bounds_a_line_and_an_event():
    p = SSEParser(max_event_bytes=100)
    with pytest.raises(EventTooLarge):
        p.feed(b"data: " + b"x" * 200)
    p = SSEParser(max_event_bytes=100)
    with pytest.raises(EventTooLarge):
        for _ in range(20):
            p.feed(b"data: 0123456789\n")
    assert SSEParser(max_event_bytes=100).feed(b"data: ok\n\n")[0].data == "ok"


# ---------------------------------------------------------------------------- what a message says was kept, is kept

KEPT = re.compile(r"[^.]*\b(?:is|are|was|were) kept\b[^.]*\.")


def test_every_kept_sentence_of_the_server_client_is_listed_here():
    """A new "… is kept" sentence in the client must get a scenario below (that proves it)."""
    text = (ROOT / "sprout_core" / "serving" / "client.py").read_text(encoding="utf-8")
    found = {m.group(0).strip() for m in KEPT.finditer(text)}
    assert any("The partial answer" in s for s in found), found
    assert len(found) == 1, found  # the one sentence, proved by the two tests below


@pytest.mark.parametrize("mode", ["cut", "stall", "malformed", "forever", "keepalive"])
def test_the_partial_answer_said_kept_is_in_the_history(fake, mode, tmp_path):
    from sprout_core import store
    from sprout_core.energy import NullMeter
    from sprout_core.metered import default_settings, metered_generate

    fake.stall_s = 3.0
    srv = ServerModel.connect(ServerConfig(fake.url, timeout_s=0.6))
    fake.mode = mode
    settings, _ = default_settings()
    o = metered_generate(srv, "Why?", L0, GenerationParams(max_new_tokens=16), NullMeter("cpu", reason="test"),
                         settings, save=True, origin="cli", label="test")
    assert "is kept" in o.result.error and o.result.partial
    assert o.result.text and o.result.text in [r.text for r in store.read_answers()]


def test_evaluate_stores_the_partial_answer_it_says_is_kept(fake):
    from sprout_core.evaluate import db
    from sprout_core.evaluate.prompts import PromptItem
    from sprout_core.evaluate.runner import PartialAnswerError, make_answer_fn, run_evaluation

    srv = ServerModel.connect(ServerConfig(fake.url))
    prompts = [PromptItem("p1", "Why is the sky blue?", "qa", None)]
    cfg = db.RunConfig(prompt_set="t-cut", n=1, seed=0, levels=("L0",), judge="none", model=srv.info.name,
                       directive_set="paper", sampling="stratified", max_new_tokens=16, second_pass=False)
    fake.mode = "cut"
    with pytest.raises(PartialAnswerError) as e:
        run_evaluation(cfg, prompts, make_answer_fn(srv, "paper", 16))
    assert "partial answer" in str(e.value) and "is kept" in str(e.value)
    con = db.connect()
    try:
        texts = [r[0] for r in con.execute("SELECT text FROM eval_answers").fetchall()]
    finally:
        con.close()
    assert "The sky is" in texts


def test_the_config_bounds_the_total_timeout():
    with pytest.raises(Exception, match="total timeout"):
        ServerConfig("http://127.0.0.1:1/v1", total_timeout_s=0)
    assert ServerConfig("http://127.0.0.1:1/v1").total_timeout_s == C.DEFAULT_TOTAL_TIMEOUT_S


def test_generate_says_when_the_servers_usage_was_not_believed(fake, capsys):
    from sprout_core import cli

    fake.mode = "usage_negative"
    rc = cli.main(["generate", "--server-url", fake.url, "--prompt", "Why?", "--levels", "L0", "--max-new-tokens",
                   "16", "--ci", "300", "--json"])
    import json as _json

    cap = capsys.readouterr()
    out = _json.loads(cap.out)
    assert rc == 0 and out[0]["prompt_tokens"] is None and out[0]["new_tokens"] == 9
    assert "note: L0: the server reported -5 completion tokens" in cap.err and "stored as unknown" in cap.err
