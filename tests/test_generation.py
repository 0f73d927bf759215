"""Streaming generation on a tiny random-weight Llama: records, limits, lock, worker errors."""
import threading
import time

import pytest

from sprout_core.directives import Directive
from sprout_core.generation import GENERATION_LOCK, GenerationParams, PromptError, generate, stream_generate

L0 = Directive("L0", "")
L1 = Directive("L1", "Always answer briefly")


def test_stream_yields_chunks_that_add_up_to_the_answer(tiny_lm):
    stream = stream_generate(tiny_lm, "what is the capital of france", L1, GenerationParams(max_new_tokens=12))
    chunks = list(stream)
    r = stream.result
    assert r is not None and r.error is None
    assert chunks, "nothing streamed"
    assert "".join(c.text for c in chunks).strip() == r.text
    assert [c.new_tokens for c in chunks] == sorted(c.new_tokens for c in chunks)
    assert r.new_tokens == 12 and r.finish_reason == "length"  # random weights rarely stop early
    assert r.level == "L1" and r.directive == "Always answer briefly" and r.placement == "system"
    assert r.prompt_tokens > 5 and r.ttft_s is not None and 0 < r.ttft_s <= r.total_s
    assert r.tokens_per_s == pytest.approx(r.new_tokens / r.total_s)


def test_directive_changes_the_prompt_tokens(tiny_lm):
    a = generate(tiny_lm, "hello world", L0, GenerationParams(max_new_tokens=2))
    b = generate(tiny_lm, "hello world", L1, GenerationParams(max_new_tokens=2))
    assert b.prompt_tokens > a.prompt_tokens


def test_greedy_is_reproducible_and_sampling_follows_the_seed(tiny_lm):
    g = [generate(tiny_lm, "the quick brown fox", L0, GenerationParams(max_new_tokens=8)).text for _ in range(2)]
    assert g[0] == g[1]
    p = GenerationParams(max_new_tokens=8, do_sample=True, temperature=1.5, top_p=1.0, seed=7)
    s1 = generate(tiny_lm, "the quick brown fox", L0, p)
    s2 = generate(tiny_lm, "the quick brown fox", L0, p)
    assert s1.text == s2.text and s1.seed == 7
    others = {generate(tiny_lm, "the quick brown fox", L0,
                       GenerationParams(max_new_tokens=8, do_sample=True, temperature=1.5, top_p=1.0, seed=k)).text
              for k in range(8, 14)}
    assert len(others | {s1.text}) > 1  # different seeds give different samples


def test_empty_and_oversized_prompts_are_refused(tiny_lm):
    with pytest.raises(PromptError, match="empty"):
        stream_generate(tiny_lm, "   ", L0)
    with pytest.raises(PromptError, match="at most 256 tokens"):
        stream_generate(tiny_lm, "hello world " * 300, L0)


def test_max_new_tokens_is_capped_to_the_context(tiny_lm):
    prompt = "hello world " * 100  # ~ 200+ tokens of a 256-token context
    r = generate(tiny_lm, prompt, L0, GenerationParams(max_new_tokens=200))
    assert r.max_new_tokens_capped
    assert r.prompt_tokens + r.new_tokens <= tiny_lm.info.context_len


def test_params_are_validated():
    with pytest.raises(ValueError):
        GenerationParams(max_new_tokens=0)
    with pytest.raises(ValueError):
        GenerationParams(do_sample=True, temperature=0)


def test_two_concurrent_callers_never_overlap(tiny_lm, monkeypatch):
    model = tiny_lm.model
    real = model.generate
    active, peak = [0], [0]
    guard = threading.Lock()

    def counting_generate(*a, **kw):
        with guard:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            time.sleep(0.05)
            return real(*a, **kw)
        finally:
            with guard:
                active[0] -= 1

    monkeypatch.setattr(model, "generate", counting_generate)
    results, errors = {}, []

    def call(name, prompt):
        try:
            results[name] = generate(tiny_lm, prompt, L1, GenerationParams(max_new_tokens=10))
        except Exception as exc:  # noqa: BLE001 - collected and reported below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(n, p)) for n, p in [("a", "hello world"), ("b", "the lazy dog")]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert peak[0] == 1
    assert set(results) == {"a", "b"}
    assert results["a"].prompt == "hello world" and results["b"].prompt == "the lazy dog"
    solo = generate(tiny_lm, "hello world", L1, GenerationParams(max_new_tokens=10))
    assert results["a"].text == solo.text  # not interleaved with b's tokens


def test_a_failing_worker_ends_the_stream_with_an_error(tiny_lm, monkeypatch):
    def boom(*a, **kw):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(tiny_lm.model, "generate", boom)
    t0 = time.perf_counter()
    stream = stream_generate(tiny_lm, "hello", L0, GenerationParams(max_new_tokens=5))
    assert list(stream) == []
    assert time.perf_counter() - t0 < 10
    r = stream.result
    assert r.finish_reason == "error" and "out of memory" in r.error
    assert GENERATION_LOCK.acquire(timeout=1)
    GENERATION_LOCK.release()


def test_closing_a_stream_early_stops_the_worker_and_frees_the_lock(tiny_lm):
    stream = stream_generate(tiny_lm, "hello world", L0, GenerationParams(max_new_tokens=200))
    it = iter(stream)
    next(it)
    it.close()  # the consumer went away (e.g. the browser tab closed)
    acquired = []

    def other_session():
        ok = GENERATION_LOCK.acquire(timeout=5)
        acquired.append(ok)
        if ok:
            GENERATION_LOCK.release()

    t = threading.Thread(target=other_session)
    t.start()
    t.join(10)
    assert acquired == [True]
    r = generate(tiny_lm, "hello world", L0, GenerationParams(max_new_tokens=3))
    assert r.new_tokens == 3


# ---------------------------------------------------------------- the generation queue (issue 11)

def test_queue_reports_answers_ahead_and_serves_first_come_first():
    from sprout_core.generation import GenerationQueue

    q = GenerationQueue(poll_s=0.02)
    assert q.acquire()
    assert q.acquire(timeout=0)  # re-entrant for the holder
    q.release()
    seen: dict[str, list[int]] = {"a": [], "b": []}
    order: list[str] = []
    started = threading.Event()

    def waiter(name: str, pre: threading.Event | None):
        if pre is not None:
            pre.wait(5)
        with q.turn(label=name, on_wait=lambda ahead: (seen[name].append(ahead), started.set())):
            order.append(name)

    ta = threading.Thread(target=waiter, args=("a", None))
    ta.start()
    assert started.wait(5)
    b_go = threading.Event()
    tb = threading.Thread(target=waiter, args=("b", b_go))
    tb.start()
    b_go.set()
    deadline = time.time() + 5
    while not seen["b"] and time.time() < deadline:
        time.sleep(0.01)
    st = q.status()
    assert st.busy and st.waiting == 2 and st.ahead == 3
    assert seen["a"][0] == 1 and seen["b"][0] == 2  # the holder; the holder and a
    q.release()
    ta.join(5)
    tb.join(5)
    assert order == ["a", "b"]
    assert not q.status().busy and q.status().waiting == 0


def test_a_waiter_that_gives_up_leaves_the_queue():
    from sprout_core.generation import GenerationQueue

    q = GenerationQueue(poll_s=0.02)
    q.acquire()
    errors = []

    def impatient():
        def stop(ahead):
            raise KeyboardInterrupt("page stopped")  # what a stopped Streamlit script raises, in kind
        try:
            q.acquire(on_wait=stop)
        except KeyboardInterrupt as exc:
            errors.append(exc)

    t = threading.Thread(target=impatient)
    t.start()
    t.join(5)
    assert errors and q.status().waiting == 0
    q.release()
    got = []
    t2 = threading.Thread(target=lambda: got.append(q.acquire(timeout=1)))
    t2.start()
    t2.join(5)
    assert got == [True]


def test_heartbeats_while_the_model_reads_the_prompt(tiny_lm, monkeypatch):
    real = tiny_lm.model.generate

    def slow_prefill(*a, **kw):
        time.sleep(0.5)  # a long prompt: no token for a while
        return real(*a, **kw)

    monkeypatch.setattr(tiny_lm.model, "generate", slow_prefill)
    from sprout_core.generation import GenerationStream

    stream = GenerationStream(tiny_lm, "hello world", L0, GenerationParams(max_new_tokens=4), heartbeat_s=0.1)
    chunks = list(stream)
    beats = [c for c in chunks if c.text == "" and c.reading_prompt]
    assert len(beats) >= 2 and all(c.prompt_tokens == stream.prompt_tokens for c in chunks)
    assert stream.result.new_tokens == 4 and stream.result.ttft_s >= 0.4


def test_closing_a_stream_gives_a_partial_aborted_result(tiny_lm):
    stream = stream_generate(tiny_lm, "hello world", L0, GenerationParams(max_new_tokens=200))
    it = iter(stream)
    next(it)
    it.close()
    r = stream.result
    assert r is not None and r.finish_reason == "aborted" and r.aborted
    assert 0 < r.new_tokens < 200
