"""Integration: the real llama.cpp server (llama-cpp-python[server]) on the embedded GGUF, as the stand-in
for vLLM/Ollama (same API). Streaming, directives, the CLI, energy attribution of 4 overlapping requests,
and the failures: unreachable, wrong model, timeout, server killed mid-answer. Also the in-process
llama.cpp backend and the Playground page on the server backend.

Skipped when llama-cpp-python is not installed, except where SPROUT_REQUIRE_LLAMA_CPP=1 (scripts/test.sh,
so CI fails instead of skipping).
"""
from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest

from sprout_core import cli, store
from sprout_core.carbon import override_intensity
from sprout_core.directives import load_directive_set
from sprout_core.errors import InputError, ServerError
from sprout_core.generation import GenerationParams, generate, stream_generate
from sprout_core.metered import CarbonSettings, metered_stream
from sprout_core.serving.client import ServerConfig, ServerModel
from sprout_core.serving.llamacpp import EMBEDDED_ALIAS, LlamaServer, free_port, llama_server_available
from tests.directive_stats import GREEDY, MEDIAN_RATIO_BOUND, long_answer_prompts, run_levels

if not llama_server_available():
    if os.environ.get("SPROUT_REQUIRE_LLAMA_CPP") == "1":
        raise RuntimeError('llama-cpp-python[server] is required here: pip install "llama-cpp-python[server]"')
    pytest.skip('llama-cpp-python[server] is not installed (bash scripts/setup.sh --test builds it)',
                allow_module_level=True)

PROMPT = "Why is the sky blue?"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server():
    s = LlamaServer(threads=1).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def srv(server):
    return ServerModel.connect(ServerConfig(server.base_url, context_len=2048, timeout_s=60))


def _checked_stream(lm, prompt, d, params):
    """One streamed answer, with the stream's own invariants checked (chunks add up to the record)."""
    s = stream_generate(lm, prompt, d, params)
    chunks = [c for c in s if c.text]  # (empty heartbeats while the server is busy)
    r = s.result
    assert r.error is None and r.backend == lm.backend and r.text
    assert "".join(c.text for c in chunks).strip() == r.text
    assert [c.new_tokens for c in chunks] == list(range(1, len(chunks) + 1)) and r.new_tokens == len(chunks)
    return r


def test_streams_every_level_with_its_directive(srv):
    """Over 8 long-answer prompts (greedy, seed 0): the median L2/L0 and L1/L0 token ratios show the directives
    bite through the server (a statistic: one greedy answer differs between machines, tests/directive_stats.py)."""
    assert srv.info.name == EMBEDDED_ALIAS and srv.info.placement == "user" and srv.info.directive_set == "smollm2"
    dset = load_directive_set(srv.info.directive_set)
    prompts = long_answer_prompts()
    run = run_levels(srv, dset, prompts, 96, levels=("L0", "L1", "L2"), stream=_checked_stream)
    # measured here: median L1/L0 0.71, L2/L0 0.35 (in process 0.68 / 0.30); no directive effect would give ~1
    assert run.median_ratio("L2") < MEDIAN_RATIO_BOUND, run.ratios("L2")
    assert run.median_ratio("L1") < 0.9, run.ratios("L1")
    l0, l2 = run.results["L0"], run.results["L2"]
    assert sum(r.finish_reason == "length" for r in l0) >= len(prompts) // 2  # undirected answers run to the cap
    assert sum(r.finish_reason == "eos" for r in l2) >= len(prompts) // 2  # "one short sentence" ends by itself
    # greedy through the server is reproducible on one machine
    again = generate(srv, prompts[0], dset.get("L2"), GenerationParams(max_new_tokens=96, **GREEDY))
    assert again.text == l2[0].text


def test_both_backends_read_the_same_prompt_and_decode_alike(srv, embedded_lm):
    """llama.cpp in process reads exactly the text and token ids transformers reads (the GGUF's template rendered
    by Sprout), and both llama.cpp paths decode with transformers' settings, not llama.cpp's defaults."""
    from sprout_core.directives import build_messages
    from sprout_core.serving.base import llama_cpp_sampling
    from sprout_core.serving.client import ServerStream
    from sprout_core.serving.llamacpp import LlamaCppModel

    lm = LlamaCppModel.load_embedded(threads=1)
    tok = embedded_lm.tokenizer
    dset = load_directive_set("smollm2")
    for prompt in [PROMPT, *long_answer_prompts(3), "Line one.\n\n  Line two: `code` — ünïcode 😀"]:
        for placement in ("user", "system"):
            for d in dset.levels:
                m = build_messages(prompt, d, placement)
                text = tok.apply_chat_template(m, add_generation_prompt=True, tokenize=False)
                assert lm.render_prompt(m) == text
                assert lm.prompt_ids(m) == tok(text, add_special_tokens=False)["input_ids"]
    greedy = llama_cpp_sampling(GenerationParams())
    assert greedy["temperature"] == 0.0 and greedy["repeat_penalty"] == 1.0 and greedy["min_p"] == 0.0
    sampled = llama_cpp_sampling(GenerationParams(do_sample=True, temperature=0.7, top_p=0.9, seed=5))
    assert sampled["top_k"] == 0 and sampled["seed"] == 5 and sampled["repeat_penalty"] == 1.0
    # the server started here is llama.cpp's: its request names every sampling field (its default repeat penalty is 1.1)
    assert srv.engine == "llama.cpp"
    body = ServerStream(srv, PROMPT, dset.get("L2"), GenerationParams()).request_body()
    assert body["repeat_penalty"] == 1.0 and body["temperature"] == 0.0 and body["min_p"] == 0.0


def test_cli_generate_through_the_server(server, capsys):
    rc = cli.main(["generate", "--server-url", server.base_url, "--prompt", PROMPT, "--levels", "L0,L2",
                   "--max-new-tokens", "24", "--ci", "300", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and [r["level"] for r in out] == ["L0", "L2"]
    for r in out:
        assert r["backend"] == "server" and r["model"] == EMBEDDED_ALIAS and r["server_url"] == server.base_url
        assert r["device"].startswith("server:127.0.0.1:") and r["new_tokens"] > 0 and r["text"]
        assert r["energy_method"] in ("measured:rapl", "estimated:cpu-tdp") and r["energy_j"] > 0
        assert "server process" in r["energy_source"] or r["energy_method"] == "measured:rapl"
        assert r["carbon_operational_g"] == pytest.approx(r["energy_j"] / 3.6e6 * 300)
    df = store.query_requests()
    assert len(df) == 2 and set(df["origin"]) == {"cli"} and df["device"].str.startswith("server:").all()
    rc = cli.main(["generate", "--server-url", server.base_url, "--server-model", "gpt-5", "--prompt", PROMPT])
    err = capsys.readouterr().err
    assert rc == 2 and "no model named 'gpt-5'" in err and EMBEDDED_ALIAS in err


def test_four_overlapping_requests_split_the_servers_energy(srv):
    meter = srv.energy_meter()
    assert meter.method in ("measured:rapl", "estimated:cpu-tdp")
    dset = load_directive_set("smollm2")
    settings = CarbonSettings(override_intensity(300.0))
    levels = ["L0", "L1", "L2", "L0"]
    outcomes, errors = {}, []
    barrier = threading.Barrier(4)
    before_parts = meter.attributed_j
    s0 = meter.inner.sample()

    def one(i):
        try:
            ms = metered_stream(srv, f"{PROMPT} ({i})", dset.get(levels[i]), GenerationParams(max_new_tokens=48), meter,
                                settings, save=False)
            barrier.wait()
            for _ in ms:
                pass
            outcomes[i] = ms.outcome
        except Exception as exc:  # noqa: BLE001 - a thread's failure is collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    s1 = meter.inner.sample()
    assert not errors and len(outcomes) == 4
    parts = [o.reading.energy_j for o in outcomes.values()]
    spans = [(o.result.started_at, o.result.started_at + o.result.total_s) for o in outcomes.values()]
    assert max(a for a, _ in spans) < min(b for _, b in spans)  # all four were in flight together
    assert all(o.result.error is None and o.result.new_tokens > 0 for o in outcomes.values())
    assert all(p is not None and p > 0 for p in parts)
    assert all("shared-by-tokens" in o.reading.flags for o in outcomes.values())
    assert sum(parts) == pytest.approx(meter.attributed_j - before_parts, rel=1e-9)  # the parts add up
    total = s1.energy_j - s0.energy_j  # the server's energy around the whole burst
    assert 0.8 * total <= sum(parts) <= total + 1e-9


def test_wrong_model_and_unreachable_server():
    with pytest.raises(ServerError) as e:
        ServerModel.connect(ServerConfig(f"http://127.0.0.1:{free_port()}/v1", timeout_s=5))
    assert "connection refused" in str(e.value)


def _read_until(stream, n: int, action) -> list[str]:
    """Consume ``stream``; after its ``n``-th text chunk call ``action()`` once; return the texts received."""
    got: list[str] = []
    for c in stream:
        if c.text:
            got.append(c.text)
            if len(got) == n:
                action()
    return got


def test_paused_server_times_out_and_a_killed_one_keeps_the_partial_answer():
    s = LlamaServer(threads=1).start()
    try:
        srv = ServerModel.connect(ServerConfig(s.base_url, timeout_s=2.0))
        with pytest.raises(ServerError):
            ServerModel.connect(ServerConfig(s.base_url, model="llama-2-70b"))
        d = load_directive_set("smollm2").get("L0")
        # timeout: the server stops sending mid-answer (SIGSTOP), then resumes
        stream = stream_generate(srv, PROMPT, d, GenerationParams(max_new_tokens=200))
        got = _read_until(stream, 5, lambda: os.kill(s.pid, signal.SIGSTOP))
        os.kill(s.pid, signal.SIGCONT)
        r = stream.result
        assert r.partial and r.finish_reason == "error" and r.error.startswith("Stalled:") and "no token for 2 s" in r.error
        assert r.text == "".join(got).strip() and r.new_tokens >= 5
        # killed mid-answer: the partial answer is kept and marked
        srv = ServerModel.connect(ServerConfig(s.base_url, timeout_s=30.0))
        stream = stream_generate(srv, PROMPT, d, GenerationParams(max_new_tokens=200))
        got = _read_until(stream, 5, s.kill)
        r = stream.result
        assert r.partial and r.finish_reason == "error" and "did the server stop" in r.error
        assert "partial answer" in r.error and r.text == "".join(got).strip() and len(got) >= 5
        # the next answer says the server is gone
        r2 = generate(srv, PROMPT, d)
        assert "Cannot reach the server" in r2.error and not r2.partial
    finally:
        try:
            os.kill(s.pid, signal.SIGCONT)
        except (ProcessLookupError, TypeError):
            pass
        s.stop()


def test_in_process_llama_cpp_backend_gives_the_same_records():
    from sprout_core.energy import detect_meter
    from sprout_core.serving.llamacpp import LlamaCppModel

    lm = LlamaCppModel.load_embedded(threads=1)
    assert lm.backend == "llama.cpp" and lm.needs_lock and lm.info.placement == "user"
    dset = load_directive_set(lm.info.directive_set)
    meter = detect_meter("cpu", powercap_root="/nonexistent", per_core_w=10.0)
    settings = CarbonSettings(override_intensity(300.0))
    outs = []
    for d in dset.levels:
        ms = metered_stream(lm, PROMPT, d, GenerationParams(max_new_tokens=80), meter, settings)
        for _ in ms:
            pass
        outs.append(ms.outcome)
    r0, r2 = outs[0].result, outs[-1].result
    assert r0.backend == "llama.cpp" and r0.prompt_tokens > 20 and r2.prompt_tokens > r0.prompt_tokens
    assert all(o.reading.energy_j > 0 and o.result.new_tokens > 0 for o in outs)
    assert len(store.query_requests()) == 3
    # the directive effect in process, as a statistic over 4 long-answer prompts (measured median L2/L0 ≈ 0.3)
    run = run_levels(lm, dset, long_answer_prompts(4), 96, stream=_checked_stream)
    assert run.median_ratio("L2") < MEDIAN_RATIO_BOUND, run.ratios("L2")


def test_playground_streams_through_the_server_backend(server, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SPROUT_SERVER_URL", server.base_url)
    monkeypatch.setenv("SPROUT_SERVER_CONTEXT", "2048")
    at = AppTest.from_file(str(ROOT / "pages/playground.py"), default_timeout=120).run()
    assert not at.exception
    at.text_area(key="pg.prompt").input(PROMPT)
    at.number_input(key="pg.max_new").set_value(24)
    if "Grid trace" in at.radio(key="pg.carbon.mode").options:
        at.radio(key="pg.carbon.mode").set_value("Slider").run()
    at.button(key="pg.run").click().run()
    assert not at.exception
    t = next(d.value for d in at.dataframe if "energy method" in d.value.columns)  # every measurement per answer
    assert list(t["level"]) == ["L0", "L1", "L2"]
    assert set(t["energy method"]) <= {"measured:rapl", "estimated:cpu-tdp"} and (t["energy (J)"] > 0).all()
    df = store.query_requests()
    assert len(df) == 3 and df["device"].str.startswith("server:127.0.0.1").all()
    home = AppTest.from_file(str(ROOT / "pages/home.py"), default_timeout=60).run()
    assert not home.exception
    assert any(m.value == EMBEDDED_ALIAS for m in home.metric)
    assert any("server schedules them" in c.value for c in home.caption)


def test_home_switches_to_llama_cpp_in_process(monkeypatch, tiny_llama2_dir):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SPROUT_MODEL", str(tiny_llama2_dir))
    monkeypatch.delenv("SPROUT_SERVER_URL", raising=False)
    at = AppTest.from_file(str(ROOT / "pages/home.py"), default_timeout=120).run()
    at.radio(key="home.backend").set_value("llama.cpp").run()
    at.button(key="home.backend_llamacpp").click().run()
    assert not at.exception
    m = {x.label: x.value for x in at.metric}
    from sprout_core.models import default_threads

    assert any("**SmolLM2-135M-Instruct**" in md.value for md in at.markdown) and m["Dtype"] == "Q4_1 (GGUF)"
    assert m["llama.cpp threads"] == str(default_threads())
    assert m["Parameters"] == "135 M"
    pg = AppTest.from_file(str(ROOT / "pages/playground.py"), default_timeout=120)
    pg.session_state["sprout.backend"] = at.session_state["sprout.backend"]
    pg.run()
    pg.text_area(key="pg.prompt").input(PROMPT)
    pg.number_input(key="pg.max_new").set_value(16)
    pg.button(key="pg.run").click().run()
    assert not pg.exception
    assert all(o.result.backend == "llama.cpp" and o.result.new_tokens > 0 for o in pg.session_state["pg.results"].outcomes)


def test_llama_cpp_is_the_default_when_installed_and_transformers_the_stated_fallback(monkeypatch):
    from sprout_core import backends

    monkeypatch.delenv("SPROUT_EMBEDDED_BACKEND", raising=False)
    for var in ("SPROUT_BACKEND", "SPROUT_SERVER_URL", "SPROUT_MODEL"):
        monkeypatch.delenv(var, raising=False)
    c = backends.default_choice()
    assert c.kind == "llama.cpp" and "llama.cpp is installed" in c.why
    assert backends.choice_from_args(cli.build_parser().parse_args(["generate", "--prompt", PROMPT])).kind == "llama.cpp"
    monkeypatch.setattr(backends, "llama_cpp_available", lambda: False)
    c = backends.default_choice()
    assert c.kind == "transformers" and "llama.cpp is not installed" in c.why and "setup.sh" in c.why
    monkeypatch.setenv("SPROUT_EMBEDDED_BACKEND", "llama.cpp")
    assert backends.default_choice().kind == "llama.cpp"
    monkeypatch.setenv("SPROUT_EMBEDDED_BACKEND", "vllm")
    with pytest.raises(InputError):
        backends.default_choice()
    monkeypatch.setenv("SPROUT_EMBEDDED_BACKEND", "llama.cpp")
    monkeypatch.setenv("SPROUT_MODEL", "/models/Llama-2-7b-chat-hf")  # a folder always runs on transformers
    assert backends.default_choice().kind == "transformers"
    monkeypatch.setenv("SPROUT_SERVER_URL", "http://127.0.0.1:9/v1")
    assert backends.default_choice().kind == "server"


def test_home_opens_on_llama_cpp_by_default_and_says_why(monkeypatch):
    from streamlit.testing.v1 import AppTest

    for var in ("SPROUT_EMBEDDED_BACKEND", "SPROUT_BACKEND", "SPROUT_SERVER_URL", "SPROUT_MODEL"):
        monkeypatch.delenv(var, raising=False)
    at = AppTest.from_file(str(ROOT / "pages/home.py"), default_timeout=120).run()
    assert not at.exception
    m = {x.label: x.value for x in at.metric}
    assert m["Dtype"] == "Q4_1 (GGUF)" and "llama.cpp threads" in m
    assert any("llama.cpp is installed" in c.value for c in at.caption)
