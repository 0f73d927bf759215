"""``python -m sprout_core gateway``: flags checked before anything starts; an unmodified ``openai`` client
talks to the gateway over real HTTP (uvicorn), streaming and not."""
from __future__ import annotations

import pytest

from sprout_core.cli import main
from tests.gateway_fakes import FakeUpstream, ServerThread


@pytest.mark.parametrize("argv,needle", [
    ([], "exactly one of --upstream"),
    (["--upstream", "http://127.0.0.1:1/v1", "--model", "embedded"], "exactly one of --upstream"),
    (["--upstream", "http://127.0.0.1:1/v1", "--policy", "greedy"], "unknown policy"),
    (["--upstream", "ftp://x"], "http://"),
    (["--upstream", "http://user:pw@host/v1"], "credentials"),
    (["--upstream", "http://127.0.0.1:1/v1", "--zone", "NOWHERE"], "NOWHERE"),
    (["--upstream", "http://127.0.0.1:1/v1", "--xi", "nan"], "--xi"),
    (["--upstream", "http://127.0.0.1:1/v1", "--confidence", "1"], "--confidence"),
    (["--upstream", "http://127.0.0.1:1/v1", "--pue", "0.5"], "--pue"),
    (["--upstream", "http://127.0.0.1:1/v1", "--port", "70000"], "--port"),
    (["--upstream", "http://127.0.0.1:1/v1", "--profile", "nope"], "nope"),
    (["--upstream", "http://127.0.0.1:1/v1", "--embodied", "nope"], "nope"),
    (["--upstream", "http://127.0.0.1:1/v1", "--judge", "api:m"], "needs prompts"),
    (["--upstream", "http://127.0.0.1:1/v1", "--judge", "oracle", "--store-prompts"], "unknown judge"),
    (["--upstream", "http://127.0.0.1:1/v1", "--eval-prompts", "/no/such/file", "--judge", "upstream"], "no such file"),
    (["--upstream", "http://127.0.0.1:1/v1", "--solver", "pulp"], "plug-in"),
    (["--upstream", "http://127.0.0.1:1/v1", "--max-tokens", "0"], "--max-tokens"),
])
def test_bad_flags_exit_2_with_a_message(argv, needle, capsys):
    assert main(["gateway", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


@pytest.fixture
def served():
    from sprout_core.gateway.app import create_app
    from sprout_core.gateway.config import GatewayConfig

    fake = ServerThread(FakeUpstream().app).start()
    gw = ServerThread(create_app(GatewayConfig(upstream=fake.url + "/v1", zone="US-TEX-ERCO", year=2023,
                                               energy="none"))).start()
    yield gw
    gw.stop()
    fake.stop()


def test_an_unmodified_openai_client_streaming_and_not(served):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)
    models = client.models.list()
    name = models.data[0].id
    r = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "Why is the sky blue?"}])
    assert r.choices[0].message.content == "The sky is blue because of Rayleigh scattering."
    assert r.usage.completion_tokens == 9
    extra = r.model_extra["sprout"]
    assert extra["level"] in ("L0", "L1", "L2") and "energy_label" in extra
    chunks = list(client.chat.completions.create(model=name, stream=True, stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": "Why?"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The sky is blue because of Rayleigh scattering."
    assert chunks[-1].usage.completion_tokens == 9 and chunks[-1].model_extra["sprout"]["hour"].endswith("Z")
    pinned = client.chat.completions.with_raw_response.create(
        model=name, messages=[{"role": "user", "content": "x"}], extra_headers={"X-Sprout-Level": "L1"})
    assert pinned.parse().model_extra["sprout"] == {**pinned.parse().model_extra["sprout"], "level": "L1", "pinned": True}
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=name, messages=[{"role": "user", "content": "x"}],
                                       extra_headers={"X-Sprout-Level": "L9"})


def test_the_gateway_and_ecologits_stay_offline(tmp_path):
    """Under the network guard: EcoLogits' estimate and a running gateway make no connection off this machine."""
    import subprocess
    import sys
    import time
    import urllib.request

    from tests.test_offline import ROOT, free_port, guarded_env, reports

    report = tmp_path / "net.jsonl"
    env = guarded_env(report, tmp_path / "state")
    code = ("from sprout_core.gateway.estimate import ecologits_energy as e; "
            "r = e('gpt-4o-mini', 100, 1.0, 'openai'); assert r.energy_j and r.energy_j > 0, r; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "sprout_core", "gateway", "--upstream", "http://127.0.0.1:9/v1",
                             "--model-name", "m", "--port", str(port), "--zone", "DE"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        t0 = time.monotonic()
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.monotonic() - t0 < 90 and proc.poll() is None, "gateway did not start"
                time.sleep(0.3)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", method="POST",
                                     data=b'{"messages": [{"role": "user", "content": "hi"}]}',
                                     headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=30)
        except urllib.error.HTTPError as exc:  # the upstream is down: a 502, not a dead gateway
            assert exc.code == 502
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert reports(report) == []
