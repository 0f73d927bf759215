"""The closed loop (issue 22 item 3) and the live intensity (item 4).

One day of a trace replayed through the gateway — fake upstream, fast clock, the replay's task mix and the
replay's evaluator verdicts handed in at the hours the schedule picks — makes the same decisions as
``simulate`` for that day: the same evaluator hours, the same mix x per hour, and request k of hour h gets
``pick_level(x_h, u_k)`` with ``u = level_stream(seed, h)``."""
from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from sprout_core import grid, profiles
from sprout_core import simulate as S
from sprout_core.gateway.app import create_app
from sprout_core.gateway.config import GatewayConfig
from sprout_core.gateway.intensity import ElectricityMapsSource, TraceSource
from sprout_core.gateway.planner import level_stream, pick_level
from tests.gateway_fakes import FakeUpstream, fake_electricitymaps

YEAR_START = 1672531200.0  # 2023-01-01 00:00 UTC


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize("start", [800, 7000])
def test_one_day_through_the_gateway_matches_simulate(start):
    prof = profiles.load_profile("llama2-13b-a100")
    trace = grid.load_trace("US-TEX-ERCO", 2023)
    cfg = S.SimConfig(start_hour=start, hours=24, seed=0, per_task_floor=False)   # the gateway's SPROUT: pooled floor
    res = S.simulate(prof, trace, cfg, ["SPROUT"])
    ctx = S.build_context(prof, trace, cfg)
    ev = ctx.evaluator()
    wl = ctx.workload
    by_hour = {int(h): k for k, h in enumerate(ctx.hour_of_year)}

    def mix(hour):
        k = by_hour[hour]
        return ctx.weights[k], float(ctx.measured[k])

    def evaluator(state, t, hour):
        ix = ctx.wl_index[by_hour[hour]]
        return wl.q_eval_task[ix], wl.n_eval_task[ix]

    clock = Clock(YEAR_START + start * 3600 + 60)
    fake = FakeUpstream(model="llama-2-13b-chat")
    up = httpx.AsyncClient(transport=httpx.ASGITransport(app=fake.app), base_url="http://up.test")
    app = create_app(GatewayConfig(upstream="http://up.test/v1", zone="US-TEX-ERCO", year=2023, energy="none",
                                   xi=cfg.xi, confidence=cfg.confidence, seed=7),
                     clock=clock, upstream=up, evaluator=evaluator, mix=mix)
    n = 6
    with TestClient(app) as client:
        xs, runs = [], []
        for h in range(24):
            levels = [client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": f"q{k}"}]})
                      .json()["sprout"]["level"] for k in range(n)]
            st = client.get("/sprout/status").json()
            x = [st["x"][lv] for lv in prof.levels]
            xs.append(x)
            hour = int(ctx.hour_of_year[h])
            u = level_stream(7, hour).random(n)
            assert levels == [prof.levels[pick_level(x, uk)] for uk in u]
            clock.t += 3600
        runs = st["evaluator"]["runs_at_served_hours"]
    assert runs == list(np.flatnonzero(ev.refresh))
    assert np.abs(np.array(xs) - res.results["SPROUT"].x).max() < 1e-9
    assert len(runs) >= 1 and np.array(xs)[:, 1:].sum() > 0  # the day used cheaper levels somewhere


def _em(calls, **kw):
    app = fake_electricitymaps(calls=calls, **kw)
    client = TestClient(app)

    def fetch(url, headers, timeout_s):
        r = client.get(url.replace("https://api.electricitymap.org", ""), headers=headers)
        if r.status_code != 200:
            import urllib.error

            raise urllib.error.HTTPError(url, r.status_code, "fake", {}, None)
        return r.json()
    return fetch


def test_electricitymaps_live_value_is_cached_per_hour_and_names_its_signal(monkeypatch):
    monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", "tok")
    calls = []
    src = ElectricityMapsSource("DE", TraceSource("DE"), fetch=_em(calls, ci=123.0, factor="lifecycle"))
    t = 1765105200.0
    r = src.read(t)
    assert r.ci_g_per_kwh == 123.0 and r.source.startswith("electricitymaps (live")
    assert "average (location-based), life-cycle" in r.signal
    src.read(t + 60)
    assert len(calls) == 1 and calls[0] == {"zone": "DE", "token": "tok"}
    src.read(t + 3600)
    assert len(calls) == 2


@pytest.mark.parametrize("why,kw,env", [("HTTP 401", {"status": 401}, "tok"), ("no token", {}, None),
                                        ("carbonIntensity", {"ci": "lots"}, "tok")])
def test_electricitymaps_failure_falls_back_to_the_trace_labelled(monkeypatch, why, kw, env):
    if env:
        monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", env)
    else:
        monkeypatch.delenv("ELECTRICITYMAPS_API_TOKEN", raising=False)
    trace = TraceSource("DE")
    src = ElectricityMapsSource("DE", trace, fetch=_em([], **kw))
    r = src.read(1765105200.0)
    assert r.source.startswith("trace (live source unavailable:") and why in r.source
    assert r.ci_g_per_kwh == trace.read(1765105200.0).ci_g_per_kwh


def test_electricitymaps_unreachable_falls_back():
    def down(url, headers, timeout_s):
        raise TimeoutError("timed out")

    import os

    os.environ["ELECTRICITYMAPS_API_TOKEN"] = "tok"
    try:
        r = ElectricityMapsSource("DE", TraceSource("DE"), fetch=down).read(1765105200.0)
    finally:
        del os.environ["ELECTRICITYMAPS_API_TOKEN"]
    assert "not reachable" in r.source


def test_the_live_evaluator_answers_every_level_judges_both_orders_and_updates_q(tmp_path):
    import time as _time

    from sprout_core import store

    prompts = tmp_path / "eval.jsonl"
    prompts.write_text('{"prompt": "Why is the sky blue?", "task": "alpaca"}\nWhat is 2+2?\nName a colour.\n',
                       encoding="utf-8")
    fake = FakeUpstream(model="llama-2-13b-chat")
    fake.judge_reply = "Output (2)"
    up = httpx.AsyncClient(transport=httpx.ASGITransport(app=fake.app), base_url="http://up.test")
    app = create_app(GatewayConfig(upstream="http://up.test/v1", zone="US-TEX-ERCO", year=2023, energy="none",
                                   judge="upstream", eval_prompts=prompts, n_eval=3),
                     clock=Clock(YEAR_START + 800 * 3600), upstream=up)
    with TestClient(app) as client:
        before = client.get("/sprout/status").json()  # the first hour: the evaluator is due (forced)
        assert before["q"]["source"].startswith("profile")
        t0 = _time.monotonic()
        while _time.monotonic() - t0 < 60:
            st = client.get("/sprout/status").json()
            if (st["evaluator"]["last"] or {}).get("status") in ("done",) or "failed" in str(st["evaluator"]["last"]):
                break
            _time.sleep(0.1)
        app.state.sprout.recorder.flush()
    last = st["evaluator"]["last"]
    assert last["status"] == "done", last
    assert last["valid"] == 3 and last["judge_energy"].startswith("charged")
    assert last["shares"].startswith(("controlled", "raw"))  # through evaluate.shares.quality_estimate
    assert st["q"]["source"].startswith("evaluator: 1 run")
    rows = store.query_requests({"origins": ["gateway-evaluator"]})
    assert len(rows) == 3 * 3 + 3 * 2  # every level of every prompt, and two judge passes per prompt
    assert set(rows["level"]) == {"L0", "L1", "L2", "judge"}
    judged = [b for b in fake.bodies if "impartial evaluator" in json.dumps(b)]
    assert len(judged) == 6
    assert st["served_total"] == 0  # the evaluator's answers are charged in the store, not counted as traffic


def test_sprout_task_draws_each_request_from_its_predicted_tasks_mix():
    """sprout-task: a mix per predicted task; each request is classified and drawn from its task's mix."""
    prof = profiles.load_profile("llama2-13b-a100")
    fake = FakeUpstream(model="llama-2-13b-chat")
    up = httpx.AsyncClient(transport=httpx.ASGITransport(app=fake.app), base_url="http://up.test")
    task_of = {"2+2": "math", "capital": "triviaqa"}
    app = create_app(GatewayConfig(upstream="http://up.test/v1", zone="US-TEX-ERCO", year=2023, energy="none",
                                   policy="sprout-task", seed=3),
                     clock=Clock(YEAR_START + 800 * 3600), upstream=up,
                     classifier=lambda text: next(t for k, t in task_of.items() if k in text), prediction_cond=None)
    with TestClient(app) as client:
        st = client.get("/sprout/status").json()
        xt = st["x_task"]
        assert set(xt) == set(prof.tasks) and all(abs(sum(v.values()) - 1) < 1e-9 for v in xt.values())
        assert len({tuple(v.values()) for v in xt.values()}) > 1  # the tasks get different mixes
        prompts = ["What is 2+2?", "The capital of France?"] * 6
        sps = [client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": p}]}).json()["sprout"]
               for p in prompts]
    hour = 800
    u = level_stream(3, hour).random(len(prompts))
    expect = [prof.levels[pick_level([xt[task_of["2+2" if "2+2" in p else "capital"]][lv] for lv in prof.levels], uk)]
              for p, uk in zip(prompts, u)]
    assert [s["level"] for s in sps] == expect
    assert [s["task"] for s in sps] == ["math", "triviaqa"] * 6


def test_the_gateway_with_a_live_source_over_http_names_it_and_falls_back(monkeypatch):
    """--ci-source electricitymaps against a local fake of the API over real HTTP (the token in the header),
    then the same fake failing: the trace, labelled."""
    from tests.gateway_fakes import ServerThread

    calls = []
    em = ServerThread(fake_electricitymaps(ci=222.0, factor="direct", calls=calls)).start()
    bad = ServerThread(fake_electricitymaps(status=503)).start()
    monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", "secret-token")
    try:
        for base, expect in ((em.url + "/v3", "electricitymaps (live"), (bad.url + "/v3", "trace (live source unavailable")):
            fake = FakeUpstream()
            up = httpx.AsyncClient(transport=httpx.ASGITransport(app=fake.app), base_url="http://up.test")
            app = create_app(GatewayConfig(upstream="http://up.test/v1", zone="DE", energy="none",
                                           ci_source="electricitymaps", electricitymaps_url=base),
                             clock=Clock(1765105200.0), upstream=up)
            with TestClient(app) as client:
                sp = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}).json()
                st = client.get("/sprout/status").json()
            assert sp["sprout"]["ci_source"].startswith(expect) and st["ci_source"].startswith(expect)
            assert "secret-token" not in json.dumps(st) + json.dumps(sp)  # the token is never shown
            if expect.startswith("electricitymaps"):
                assert sp["sprout"]["ci_g_per_kwh"] == 222.0 and "average (location-based), direct" in st["ci_signal"]
            else:
                assert "HTTP 503" in st["ci_source"] and st["ci_g_per_kwh"] > 0
    finally:
        em.stop()
        bad.stop()
    assert calls and calls[0] == {"zone": "DE", "token": "secret-token"}
