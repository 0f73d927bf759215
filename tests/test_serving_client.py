"""The server backend against a scripted OpenAI-compatible server: streaming, directives, failures."""
from __future__ import annotations

import json
import threading
import time

import pytest

from sprout_core.directives import Directive, load_directive_set
from sprout_core.errors import InputError, ServerError
from sprout_core.generation import GenerationParams, PromptError, generate, generation_lock, stream_generate
from sprout_core.serving.client import ServerConfig, ServerModel, is_local_host, normalize_base_url, parse_indices
from tests.fake_openai import FakeOpenAI

L0 = Directive("L0", "")
L2 = Directive("L2", "Answer in one short sentence.")


@pytest.fixture()
def fake():
    f = FakeOpenAI().start()
    yield f
    f.stop()


def _server(fake, **kw) -> ServerModel:
    return ServerModel.connect(ServerConfig(fake.url, **kw))


def test_urls_are_normalised_and_credentials_refused():
    assert normalize_base_url("127.0.0.1:8000") == "http://127.0.0.1:8000/v1"
    assert normalize_base_url("http://h:8000/v1/chat/completions") == "http://h:8000/v1"
    assert normalize_base_url("https://api.example.com/openai/v1/") == "https://api.example.com/openai/v1"
    assert normalize_base_url("http://[::1]:8080") == "http://[::1]:8080/v1"
    for bad in ("", "ftp://x/v1", "http://user:secret@h:1/v1", "http://h:99999/v1"):
        with pytest.raises(InputError) as e:
            normalize_base_url(bad)
        assert "secret" not in str(e.value)
    assert parse_indices("0, 2") == (0, 2) and parse_indices("") is None
    for bad in ("a", "0,0", "-1"):
        with pytest.raises(InputError):
            parse_indices(bad)
    with pytest.raises(InputError):
        ServerConfig("http://h/v1", timeout_s=0)


def test_config_from_environment_reads_but_never_keeps_the_key():
    env = {"SPROUT_SERVER_URL": "http://127.0.0.1:9/v1", "SPROUT_SERVER_MODEL": "m", "SPROUT_SERVER_GPUS": "0,1",
           "SPROUT_SERVER_PID": "42", "SPROUT_SERVER_TIMEOUT": "5", "SPROUT_SERVER_API_KEY": "sk-secret"}
    cfg = ServerConfig.from_env(env)
    assert (cfg.model, cfg.gpu_indices, cfg.pid, cfg.timeout_s) == ("m", (0, 1), 42, 5.0)
    assert "sk-secret" not in repr(cfg)
    assert ServerConfig.from_env({}) is None
    with pytest.raises(InputError):
        ServerConfig.from_env({"SPROUT_SERVER_URL": "http://h/v1", "SPROUT_SERVER_PID": "x"})


def test_local_and_remote_hosts():
    assert is_local_host("127.0.0.1") and is_local_host("localhost") and is_local_host("::1")
    assert not is_local_host("203.0.113.7")  # TEST-NET-3: never this machine
    assert not is_local_host("no-such-host.invalid")


def test_connect_picks_the_served_model_and_places_directives_by_name(fake):
    srv = _server(fake)
    assert srv.info.name == "fake-llama-2-7b-chat" and srv.info.kind == "server" and srv.backend == "server"
    assert srv.info.placement == "system" and srv.info.directive_set == "paper"  # matched "llama-2" in data/models.json
    assert srv.info.context_len == 4096 and srv.info.device == f"server:127.0.0.1:{fake.port}"
    assert not srv.needs_lock
    fake.models = ["SmolLM2-135M-Instruct-q4"]
    small = _server(fake)
    assert small.info.placement == "user"
    fake.models = ["some-new-model"]
    assert _server(fake).info.placement == "system"  # the default entry


def test_stream_yields_chunks_and_a_result_record_like_the_local_model(fake):
    srv = _server(fake)
    s = stream_generate(srv, "Why is the sky blue?", L2, GenerationParams(max_new_tokens=50))
    seen = []
    s.on_tokens = seen.append
    chunks = list(s)
    r = s.result
    assert "".join(c.text for c in chunks).strip() == r.text == "The sky is blue because of Rayleigh scattering."
    assert [c.new_tokens for c in chunks] == list(range(1, 10)) and seen == list(range(1, 10))
    assert r.new_tokens == 9 and r.finish_reason == "eos" and r.error is None and not r.partial
    assert r.backend == "server" and r.prompt_tokens is None and r.extra["token_count"] == "streamed chunks"
    assert r.ttft_s is not None and 0 < r.ttft_s <= r.total_s and r.tokens_per_s > 0
    body = fake.requests[-1]
    assert body["stream"] is True and body["max_tokens"] == 50 and body["temperature"] == 0.0
    assert body["messages"] == [{"role": "system", "content": "Answer in one short sentence."},
                                {"role": "user", "content": "Why is the sky blue?"}]
    generate(srv, "Why?", L0, GenerationParams(max_new_tokens=5))
    assert fake.requests[-1]["messages"] == [{"role": "user", "content": "Why?"}]  # L0: no directive at all


def test_user_placement_sampling_length_and_usage(fake):
    fake.models = ["smollm2-135m-instruct"]
    fake.mode = "usage"
    srv = _server(fake)
    d = load_directive_set("smollm2").get("L1")
    r = generate(srv, "Why?", d, GenerationParams(max_new_tokens=4, do_sample=True, temperature=0.5, seed=3))
    body = fake.requests[-1]
    assert body["messages"] == [{"role": "user", "content": f"Why? {d.text}"}]
    assert (body["temperature"], body["seed"]) == (0.5, 3)
    assert r.finish_reason == "length" and r.prompt_tokens == 21 and r.new_tokens == 5  # the server's own count
    assert r.extra["token_count"] == "server usage"


def test_chunked_transfer_encoding(fake):
    fake.mode = "chunked"
    r = generate(_server(fake), "Why?", L0)
    assert r.error is None and r.new_tokens == 9


def test_api_key_is_sent_from_the_environment_and_never_shown(fake, monkeypatch):
    fake.key = "sk-test-123"
    with pytest.raises(ServerError) as e:
        _server(fake)
    assert "SPROUT_SERVER_API_KEY" in str(e.value) and "needs an API key" in str(e.value)
    monkeypatch.setenv("SPROUT_SERVER_API_KEY", "wrong-key")
    with pytest.raises(ServerError) as e:
        _server(fake)
    assert "refused the API key" in str(e.value) and "wrong-key" not in str(e.value)
    monkeypatch.setenv("MY_KEY", "sk-test-123")
    srv = _server(fake, api_key_env="MY_KEY")
    r = generate(srv, "Why?", L0)
    assert r.error is None and fake.headers[-1]["Authorization"] == "Bearer sk-test-123"
    assert "sk-test-123" not in repr(srv) and "sk-test-123" not in json.dumps(r.to_dict())


def test_unreachable_server_and_wrong_model_raise_clear_server_errors(fake):
    port = fake.port
    with pytest.raises(ServerError) as e:
        _server(fake, model="llama-3-70b")
    assert "no model named 'llama-3-70b'" in str(e.value) and "fake-llama-2-7b-chat" in str(e.value)
    fake.stop()
    with pytest.raises(ServerError) as e:
        ServerModel.connect(ServerConfig(f"http://127.0.0.1:{port}/v1"))
    assert "Cannot reach the server" in str(e.value) and "connection refused" in str(e.value)
    with pytest.raises(ServerError) as e:
        ServerModel.connect(ServerConfig("http://no-such-host.invalid:8000/v1", timeout_s=5))
    assert "unknown" in str(e.value)


def test_server_without_a_models_list_needs_a_name(fake):
    fake.models = None
    with pytest.raises(ServerError) as e:
        _server(fake)
    assert "give the model name" in str(e.value)
    assert _server(fake, model="whatever").info.name == "whatever"


def test_server_going_away_between_answers_is_an_error_in_the_result(fake):
    srv = _server(fake)
    fake.stop()
    r = generate(srv, "Why?", L0)
    assert r.finish_reason == "error" and "Cannot reach the server" in r.error and not r.partial and r.text == ""


@pytest.mark.parametrize("mode, words", [("cut", "The sky is"), ("cut_chunked", "The sky is")])
def test_stream_cut_mid_answer_keeps_the_partial_answer(fake, mode, words):
    fake.mode = mode
    r = generate(_server(fake), "Why?", L0)
    assert r.text == words and r.partial and r.finish_reason == "error" and r.new_tokens == 3
    assert "mid-answer after 3 tokens" in r.error and "partial answer (3 tokens) is kept" in r.error


def test_a_slow_server_gets_heartbeats_while_no_token_arrives(fake):
    fake.delay_s = 0.7  # slower than the heartbeat
    fake.words = ["slow", " answer"]
    chunks = list(stream_generate(_server(fake), "Why?", L0))
    assert [c.text for c in chunks if c.text] == ["slow", " answer"]
    assert any(not c.text for c in chunks)  # heartbeats: empty text, the count so far
    counts = [c.new_tokens for c in chunks]
    assert counts == sorted(counts) and counts[-1] == 2


def test_silence_mid_answer_times_out_with_the_partial_answer(fake):
    fake.mode = "stall"
    t0 = time.perf_counter()
    r = generate(_server(fake, timeout_s=0.5), "Why?", L0)
    assert time.perf_counter() - t0 < 4
    assert r.partial and r.text == "The sky is" and "Stalled" in r.error and "no token for 0.5 s (after 3 tokens)" in r.error
    assert "Cannot reach" not in r.error


@pytest.mark.parametrize("mode, says", [
    ("http500", "failed (HTTP 500: CUDA out of memory)"),
    ("http400_ctx", "does not fit the served model's context"),
    ("model404", "has no model named 'fake-llama-2-7b-chat'"),
    ("error_event", "reported an error mid-answer: engine died"),
    ("garbage", "not a chat-completion chunk"),
    ("interrupted", "without finishing the answer (no finish reason)"),
])
def test_server_errors_become_messages(fake, mode, says):
    srv = _server(fake)
    fake.mode = mode
    r = generate(srv, "Why?", L0)
    assert r.finish_reason == "error" and says in r.error


def test_bad_prompts_are_refused_before_any_request(fake):
    srv = _server(fake)
    n = len(fake.requests)
    for bad in ("", "   ", "x" * 20_001):
        with pytest.raises(PromptError):
            stream_generate(srv, bad, L0)
    assert len(fake.requests) == n


def test_closing_a_stream_early_stops_reading(fake):
    fake.delay_s = 0.2
    s = stream_generate(_server(fake), "Why?", L0)
    it = iter(s)
    first = next(it)
    it.close()
    assert first.text == "The"
    r = s.result  # the record of an abandoned stream: what had arrived, marked aborted
    assert r.finish_reason == "aborted" and r.text == "The" and r.partial and r.error is None


def test_server_backend_takes_no_lock_so_sessions_stream_at_once(fake):
    fake.delay_s = 0.05
    srv = _server(fake)
    spans = {}

    def one(i):
        with generation_lock(srv):
            t0 = time.perf_counter()
            generate(srv, f"q{i}", L0)
            spans[i] = (t0, time.perf_counter())

    from sprout_core.generation import GENERATION_LOCK

    with GENERATION_LOCK:  # even while an in-process answer holds the lock
        threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert len(spans) == 3
    starts, ends = zip(*spans.values())
    assert max(starts) < min(ends)  # all three were streaming at the same time


def test_the_evaluator_answers_through_a_server_and_stops_when_it_fails(fake):
    from sprout_core.errors import GenerationError
    from sprout_core.evaluate import db
    from sprout_core.evaluate.prompts import PromptItem
    from sprout_core.evaluate.runner import make_answer_fn, run_evaluation

    srv = _server(fake)
    prompts = [PromptItem("p1", "Why is the sky blue?", "qa", None), PromptItem("p2", "What is 2+2?", "math", None)]
    cfg = db.RunConfig(prompt_set="t", n=2, seed=0, levels=("L0", "L2"), judge="none", model=srv.info.name,
                       directive_set="paper", sampling="stratified", max_new_tokens=16, second_pass=False)
    answer = make_answer_fn(srv, "paper", 16)
    st = run_evaluation(cfg, prompts, answer)
    assert st.finished and st.done == 4
    assert fake.requests[-1]["messages"][0] == {"role": "system", "content": "Always answer very briefly"}
    rec = answer("Why?", "L0")
    assert rec["device"].startswith("server:") and rec["energy_method"] in ("estimated:cpu-tdp", "measured:rapl", "n/a")
    fake.mode = "cut"
    with pytest.raises(GenerationError) as e:
        answer("Why?", "L1")
    assert "run stops here" in str(e.value) and "partial answer" in str(e.value)
