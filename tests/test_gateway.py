"""The gateway (issue 22): OpenAI-compatible endpoints, the sprout object, pinning, energy, store rows, faults."""
from __future__ import annotations

import json
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from sprout_core import store
from sprout_core.directives import Directive
from sprout_core.energy import AttributedMeter
from sprout_core.energy.base import EnergyMeter, Sample
from sprout_core.gateway.app import create_app, place_directive
from sprout_core.gateway.config import GatewayConfig
from tests.gateway_fakes import FakeUpstream

T0 = 1672531200.0 + 800 * 3600  # 2023-02-03 08:00 UTC = hour 800 of 2023


class WattMeter(EnergyMeter):
    """A counter that advances at ``power_w`` W of wall time (a stand-in for RAPL or NVML)."""

    name = "fake-counter"
    method = "measured:fake-counter"
    counter_based = True

    def __init__(self, power_w: float = 100.0) -> None:
        super().__init__("cpu")
        self.power_w = power_w
        self.t0 = time.perf_counter()

    def sample(self) -> Sample:
        t = time.perf_counter()
        return Sample(t, (t - self.t0) * self.power_w, self.power_w)

    def describe(self) -> str:
        return "fake energy counter at 100 W"


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make(fake: FakeUpstream | None = None, meter=None, clock=None, **cfg):
    fake = fake or FakeUpstream()
    up = httpx.AsyncClient(transport=httpx.ASGITransport(app=fake.app), base_url="http://upstream.test")
    kw = dict(upstream="http://upstream.test/v1", zone="US-TEX-ERCO", year=2023, energy="none")
    kw.update(cfg)
    app = create_app(GatewayConfig(**kw), clock=clock or Clock(), upstream=up, meter=meter)
    return TestClient(app), fake


MSG = {"messages": [{"role": "user", "content": "Why is the sky blue?"}]}


def test_chat_non_streaming_has_the_sprout_object_and_a_store_row():
    client, fake = make(meter=AttributedMeter(WattMeter()), energy="auto", store_prompts=False)
    with client:
        r = client.post("/v1/chat/completions", json=MSG)
        assert r.status_code == 200, r.text
        d = r.json()
        client.app.state.sprout.recorder.flush()
    assert d["object"] == "chat.completion"
    assert d["choices"][0]["message"]["content"].startswith("The sky is blue")
    sp = d["sprout"]
    for k in ("level", "pinned", "directive", "prompt_tokens", "completion_tokens", "energy_j", "energy_label",
              "carbon_g", "ci_g_per_kwh", "ci_source", "hour"):
        assert k in sp
    assert sp["level"] in ("L0", "L1", "L2") and sp["pinned"] is False
    assert sp["completion_tokens"] == 9 and d["usage"]["completion_tokens"] == 9 and sp["prompt_tokens"] == 17
    assert sp["energy_j"] is not None and sp["energy_j"] > 0 and sp["energy_label"].startswith("measured")
    assert sp["carbon_g"] > 0 and sp["hour"] == "2023-02-03T08:00:00Z"
    assert sp["ci_source"].startswith("trace (US-TEX-ERCO 2023, hour 800")
    rows = store.query_requests()
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row["origin"] == "gateway" and row["level"] == sp["level"]
    assert not row["prompt"] and not row["answer"]  # not stored without --store-prompts
    assert row["pinned"] == 0 and row["hour_utc"] == "2023-02-03T08:00:00Z" and row["ci_source"].startswith("trace")
    back = store.read_answers()[0]  # read back as the one answer record
    assert back.level == sp["level"] and back.carbon_g == pytest.approx(sp["carbon_g"]) and back.pinned is False
    assert row["energy_method"] == "measured:fake-counter"


def test_streaming_ends_with_usage_and_sprout_before_done():
    client, fake = make()
    with client:
        with client.stream("POST", "/v1/chat/completions", json={**MSG, "stream": True}) as r:
            assert r.status_code == 200
            lines = [ln for ln in r.iter_lines() if ln.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    last = json.loads(lines[-2][6:])
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 9 and "sprout" in last
    assert last["sprout"]["energy_j"] is None and last["sprout"]["energy_label"].startswith("n/a")
    text = "".join((json.loads(ln[6:])["choices"] or [{}])[0].get("delta", {}).get("content") or ""
                   for ln in lines[:-2])
    assert text == "The sky is blue because of Rayleigh scattering."


def test_pinned_level_places_the_directive_and_is_recorded():
    client, fake = make(model_name="fake-llama-2-7b-chat", store_prompts=True)
    with client:
        r = client.post("/v1/chat/completions", json=MSG, headers={"X-Sprout-Level": "L2"})
        client.app.state.sprout.recorder.flush()
    sp = r.json()["sprout"]
    assert sp["level"] == "L2" and sp["pinned"] is True and sp["directive"]
    sent = fake.bodies[-1]["messages"]
    assert sent[0]["role"] == "system" and sent[0]["content"] == sp["directive"]  # llama-2: system message
    assert sent[1] == MSG["messages"][0]
    row = store.query_requests().iloc[0]
    assert row["origin"] == "gateway" and row["pinned"] == 1 and row["prompt"] == "Why is the sky blue?"


@pytest.mark.parametrize("value", ["L7", "fast", "", "L0,L1"])
def test_a_bad_level_header_is_a_400(value):
    client, _ = make()
    with client:
        r = client.post("/v1/chat/completions", json=MSG, headers={"X-Sprout-Level": value})
    assert r.status_code == 400 and "X-Sprout-Level" in r.json()["error"]["message"]


def test_user_placement_appends_to_the_last_user_turn():
    d = Directive("L1", "Be brief.")
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c "}]
    out = place_directive(msgs, d, "user")
    assert out[-1]["content"] == "c Be brief." and out[1]["content"] == "a" and msgs[-1]["content"] == "c "
    out = place_directive(msgs, d, "system")
    assert out[0]["content"] == "Be brief.\n\ns" and len(out) == 4
    assert place_directive(msgs, Directive("L0", ""), "system") == msgs


@pytest.mark.parametrize("body,needle", [
    (b"not json", "not JSON"),
    (b"[1, 2]", "JSON object"),
    (json.dumps({"messages": []}).encode(), "messages"),
    (json.dumps({"messages": [{"role": "wizard", "content": "x"}]}).encode(), "chat role"),
    (json.dumps({**MSG, "max_tokens": 10**6}).encode(), "at most"),
    (json.dumps({**MSG, "max_tokens": 0}).encode(), "max_tokens"),
    (json.dumps({**MSG, "n": 3}).encode(), "one choice"),
    (json.dumps({**MSG, "stream": "yes"}).encode(), "stream"),
])
def test_bad_requests_get_400_with_a_reason(body, needle):
    client, fake = make()
    with client:
        r = client.post("/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]["message"] and not fake.bodies


def test_body_over_the_limit_is_413():
    client, fake = make(max_body_bytes=2048)
    with client:
        r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x" * 5000}]})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large" and not fake.bodies


def test_wrong_model_is_404_models_lists_the_served_one():
    client, _ = make()
    with client:
        assert client.get("/v1/models").json()["data"][0]["id"] == "fake-llama-2-7b-chat"
        r = client.post("/v1/chat/completions", json={**MSG, "model": "gpt-9"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


@pytest.mark.parametrize("mode,status,code", [("http500", 502, "upstream_error"), ("http400", 400, "upstream_rejected"),
                                              ("garbage", 502, "upstream_stream_error"),
                                              ("cut", 502, "upstream_stream_error"),
                                              ("error_event", 502, "upstream_stream_error")])
def test_upstream_faults_are_openai_errors_and_the_gateway_keeps_serving(mode, status, code):
    fake = FakeUpstream()
    fake.mode = mode
    client, _ = make(fake)
    with client:
        r = client.post("/v1/chat/completions", json=MSG)
        if mode in ("cut", "error_event"):  # a partial answer is still an answer, marked as an error
            assert r.status_code == 200 and r.json()["sprout"]["status"] == "error"
        else:
            assert r.status_code == status, r.text
            assert r.json()["error"]["code"] == code
        fake.mode = "ok"
        assert client.post("/v1/chat/completions", json=MSG).status_code == 200
        assert client.get("/health").json()["status"] == "ok"


def test_upstream_down_is_502_and_slow_is_504():
    def refuse(request):
        raise httpx.ConnectError("connection refused")

    def slow(request):
        raise httpx.ReadTimeout("timed out")

    for handler, status in ((refuse, 502), (slow, 504)):
        up = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        app = create_app(GatewayConfig(upstream="http://127.0.0.1:9/v1", model_name="m", zone="US-TEX-ERCO", year=2023,
                                       energy="none"), clock=Clock(), upstream=up)
        with TestClient(app) as client:
            r = client.post("/v1/chat/completions", json=MSG)
            assert r.status_code == status and "upstream" in r.json()["error"]["message"]
            assert client.get("/sprout/status").json()["failed_total"] == 1


def test_stream_cut_mid_answer_sends_an_error_event_after_the_sprout_chunk():
    fake = FakeUpstream()
    fake.mode = "cut"
    client, _ = make(fake)
    with client:
        with client.stream("POST", "/v1/chat/completions", json={**MSG, "stream": True}) as r:
            lines = [ln for ln in r.iter_lines() if ln.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    assert "error" in json.loads(lines[-2][6:])
    assert json.loads(lines[-3][6:])["sprout"]["status"] == "error"


def test_status_reports_mix_theta_ci_and_counts():
    clock = Clock()
    client, _ = make(clock=clock)
    with client:
        for _ in range(5):
            client.post("/v1/chat/completions", json=MSG)
        client.post("/v1/chat/completions", json=MSG, headers={"X-Sprout-Level": "L0"})
        s = client.get("/sprout/status").json()
        assert abs(sum(s["x"].values()) - 1) < 1e-9 and 0 < s["theta"] <= 1
        assert s["ci_source"].startswith("trace") and s["ci_g_per_kwh"] > 0
        served = s["served_this_hour"]
        assert sum(served[lv] for lv in ("L0", "L1", "L2")) == 5 and served["pinned"] == 1
        clock.t += 3600
        s2 = client.get("/sprout/status").json()
        assert s2["hour"] == "2023-02-03T09:00:00Z" and s2["served_this_hour"]["pinned"] == 0


def test_fixed_policy_serves_that_level():
    client, _ = make(policy="fixed:L1")
    with client:
        levels = {client.post("/v1/chat/completions", json=MSG).json()["sprout"]["level"] for _ in range(6)}
    assert levels == {"L1"}


def test_remote_upstream_gets_the_ecologits_estimate_or_null_with_the_reason():
    client, _ = make(FakeUpstream(model="gpt-4o-mini"), energy="ecologits", ecologits_provider="openai")
    with client:
        sp = client.post("/v1/chat/completions", json=MSG).json()["sprout"]
    assert sp["energy_label"].startswith("estimated (ecologits")
    assert sp["energy_j_low"] <= sp["energy_j"] <= sp["energy_j_high"]
    client, _ = make(FakeUpstream(model="no-such-model"), energy="ecologits")
    with client:
        sp = client.post("/v1/chat/completions", json=MSG).json()["sprout"]
    assert sp["energy_j"] is None and "not in EcoLogits" in sp["energy_label"] and sp["carbon_g"] is None


def test_concurrent_requests_split_the_energy_and_the_parts_add_up():
    """Four overlapping streams through the gateway: each gets its token share; the shares add up to the
    energy the meter read while any was in flight."""
    import asyncio
    import concurrent.futures

    from tests.gateway_fakes import ServerThread

    fake = ServerThread(FakeUpstream(n_tokens=12, token_interval_s=0.02).app).start()
    meter = AttributedMeter(WattMeter())
    app = create_app(GatewayConfig(upstream=fake.url + "/v1", zone="US-TEX-ERCO", year=2023, energy="auto"),
                     clock=Clock(), meter=meter)
    gw = ServerThread(app).start()

    async def one(client):
        r = await client.post(gw.url + "/v1/chat/completions", json=MSG, timeout=60)
        return r.json()["sprout"]

    async def main():
        async with httpx.AsyncClient() as client:
            return await asyncio.gather(*(one(client) for _ in range(4)))

    try:  # in a thread of its own: a browser test's Playwright may keep an event loop running in this one
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            sps = pool.submit(asyncio.run, main()).result()
    finally:
        gw.stop()
        fake.stop()
    parts = [s["energy_j"] for s in sps]
    assert all(p is not None and p > 0 for p in parts)
    assert sum(parts) == pytest.approx(meter.attributed_j, rel=1e-9)
    assert any("other request" in s["energy_label"] for s in sps)  # says it was shared


def test_history_shows_the_level_and_whether_it_was_pinned():
    from sprout_core.views import history as H

    client, _ = make()
    with client:
        client.post("/v1/chat/completions", json=MSG, headers={"X-Sprout-Level": "L1"})
        client.post("/v1/chat/completions", json=MSG)
        client.app.state.sprout.recorder.flush()
    table = H.display_table(store.query_requests())
    assert list(table["pinned"]) == [False, True]  # newest first
    assert table["level"].iloc[1] == "L1" and set(table["origin"]) == {"gateway"}


def test_a_slow_upstream_is_a_504_and_a_stall_mid_answer_keeps_the_partial_text():
    from tests.gateway_fakes import ServerThread

    def gateway(fake):
        srv = ServerThread(fake.app).start()
        app = create_app(GatewayConfig(upstream=srv.url + "/v1", zone="US-TEX-ERCO", year=2023, energy="none",
                                       timeout_s=0.5), clock=Clock())
        return srv, TestClient(app)

    slow = FakeUpstream(ttft_s=3.0)
    srv, client = gateway(slow)
    try:
        with client:
            r = client.post("/v1/chat/completions", json=MSG)
            assert r.status_code == 504, r.text
            assert "0.5 s" in r.json()["error"]["message"]
    finally:
        srv.stop()
    stall = FakeUpstream()
    stall.mode, stall.stall_s = "stall", 3.0
    srv, client = gateway(stall)
    try:
        with client:
            d = client.post("/v1/chat/completions", json=MSG).json()
            assert d["sprout"]["status"] == "error" and d["choices"][0]["finish_reason"] == "error"
            assert d["choices"][0]["message"]["content"] == "The sky is"
            assert client.get("/health").json()["status"] == "ok"
    finally:
        srv.stop()
