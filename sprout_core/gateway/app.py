"""The OpenAI-compatible, carbon-aware gateway: a FastAPI app in front of any OpenAI-compatible engine.

``create_app(config, clock=time.time, upstream=None, meter=None, evaluator=None, mix=None)`` builds it;
tests inject a fake ``upstream`` (an ``httpx.AsyncClient``), a fast ``clock`` (epoch seconds), a ``meter``
(an :class:`~sprout_core.energy.AttributedMeter`), an ``evaluator`` hook and a task-``mix`` hook.

Per request (``POST /v1/chat/completions``, streaming or not): the current hour's plan
(:class:`~sprout_core.gateway.planner.HourlyPlanner`) gives the level — request k of the hour draws
``u_k`` from ``assign.level_stream(seed, hour)``; ``X-Sprout-Level: L0|L1|L2`` pins one (recorded as pinned,
no draw) — the directive goes where the model family wants it (system message or user turn), the
upstream streams the answer (always streamed upstream, so tokens are timed for the energy split), and the
response carries a top-level ``sprout`` object; a stream ends with one chunk carrying ``usage`` and
``sprout`` before ``[DONE]``. Energy: a local upstream is metered (NVML, RAPL or the CPU-time estimate of its
processes) and split among concurrent requests by tokens (:mod:`sprout_core.energy.attribution`); a remote
one gets EcoLogits' estimate (:mod:`.estimate`). Every request becomes a row in the store, written as one
:class:`sprout_core.record.AnswerRecord` (origin ``gateway``, ``pinned`` set); prompt and answer text only
with ``store_prompts``.

Faults never take the gateway down: an unreachable upstream → 502, a timeout → 504, an upstream error → 502
(its 400/429 passed on), all with OpenAI-style ``{"error": {...}}`` bodies; a bad request → 400 with the
reason, a body over the limit → 413.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from sprout_core import carbon, store
from sprout_core.decision import default_requests_per_hour
from sprout_core.directives import Directive, config_for_model, load_directive_set
from sprout_core.errors import InputError
from sprout_core.gateway.config import GatewayConfig
from sprout_core.gateway.estimate import ecologits_energy, provider_for
from sprout_core.gateway.intensity import (
    CIReading,
    ElectricityMapsSource,
    FixedSource,
    TraceSource,
    hour_of_year,
    hour_start_iso,
)
from sprout_core.gateway.planner import HourlyPlanner, LevelStream
from sprout_core.metered import CarbonSettings
from sprout_core.record import AnswerRecord
from sprout_core.serving.client import normalize_base_url
from sprout_core.serving.sse import ChunkFormatError, SSEParser, parse_chunk
from sprout_core.serving.sse import finish_reason as sse_finish
from sprout_core.settings import Settings

_log = logging.getLogger("sprout.gateway.app")

LEVEL_HEADER = "x-sprout-level"
ORIGIN = "gateway"
#: prompts kept in memory (only with --store-prompts) for the evaluator's sample
RECENT_PROMPTS = 500
#: upstream connection pools used in turn (see UpstreamPool)
SHARDS = Settings.from_env().gateway_pools


# --------------------------------------------------------------------------- errors
def openai_error(status: int, message: str, etype: str, code: str | None = None, param: str | None = None) -> JSONResponse:
    """An OpenAI-style error response: ``{"error": {"message", "type", "param", "code"}}``."""
    return JSONResponse({"error": {"message": message, "type": etype, "param": param, "code": code}}, status_code=status)


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None, status: int = 400, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.param, self.status, self.code = param, status, code


class UpstreamFailure(Exception):
    """The upstream failed before the answer started: ``status`` 502/504 (or its 400/429), message, code."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


# --------------------------------------------------------------------------- store writer
class Recorder:
    """Writes request rows to the store from one background thread (the event loop never waits on SQLite)."""

    def __init__(self, db_path=None) -> None:
        self.db_path = db_path
        self._q: queue.Queue = queue.Queue()
        self.written = 0
        self.errors: list[str] = []
        self._t = threading.Thread(target=self._run, name="sprout-gateway-store", daemon=True)
        self._t.start()

    def put(self, rec: store.RequestRecord) -> None:
        self._q.put(rec)

    def _run(self) -> None:
        while True:
            rec = self._q.get()
            if rec is None:
                return
            try:
                store.record_request(rec, path=self.db_path)
                self.written += 1
            except store.StoreError as exc:  # queued or lost: say so in /sprout/status
                self.errors.append(str(exc))
            finally:
                self._q.task_done()

    def flush(self, timeout_s: float = 10.0) -> None:
        t0 = time.monotonic()
        while self._q.unfinished_tasks and time.monotonic() - t0 < timeout_s:
            time.sleep(0.01)

    def close(self) -> None:
        self.flush()
        self._q.put(None)
        self._t.join(timeout=5)


# --------------------------------------------------------------------------- state
@dataclass
class HourCounts:
    hour: str
    ci_g_per_kwh: float | None
    x: dict[str, float]
    levels: Counter = field(default_factory=Counter)
    pinned: int = 0


class GatewayState:
    """What the gateway keeps in memory: the planner, the hour's level stream and counts, the CI source,
    the evaluator's last run. Everything per request is in the store."""

    def __init__(self, cfg: GatewayConfig, clock: Callable[[], float], upstream: httpx.AsyncClient,
                 meter=None, evaluator=None, mix=None, classifier=None) -> None:
        from sprout_core import profiles

        self.cfg = cfg
        self.clock = clock
        self.upstream = upstream
        self.base_url = normalize_base_url(cfg.upstream)
        self.profile = profiles.load_profile(cfg.profile)
        self.levels = tuple(self.profile.levels)
        self.ci_source = self._ci_source()
        lo, hi = self.ci_source.ci_range
        t = clock()
        self.planner = HourlyPlanner(self.profile, lo, hi, cfg.xi, cfg.confidence, cfg.solver, cfg.policy,
                                     cfg.schedule, cfg.evaluator_memory_h, self.ci_source.history(t))
        self.stream = LevelStream(cfg.seed)
        self.hour_key: tuple[int, int] | None = None
        self.ci: CIReading | None = None
        self.hours: deque[HourCounts] = deque(maxlen=48)
        self.evaluator = evaluator
        self.mix = mix
        self.evaluator_last: dict[str, Any] | None = None
        self.evaluator_task: asyncio.Task | None = None
        self.recent: deque[tuple[str, str | None]] = deque(maxlen=RECENT_PROMPTS)
        self.model_name = cfg.model_name
        self.meter = meter
        self.meter_note = ""
        self.recorder = Recorder(cfg.db_path) if cfg.store else None
        self.embodied = carbon.embodied_preset(cfg.embodied)
        self.served = 0
        self.failed = 0
        #: sprout-task: text → predicted task (the reference classifier unless injected)
        self.classify = classifier
        self.directive_cache: dict[str, tuple] = {}

    def _ci_source(self):
        c = self.cfg
        if c.ci_source == "fixed" or (c.ci is not None and c.ci_source == "trace"):
            try:
                rng = TraceSource(c.zone, c.year, c.ci_column).ci_range
            except InputError:
                rng = None
            return FixedSource(float(c.ci), rng)
        trace = TraceSource(c.zone, c.year, c.ci_column)
        if c.ci_source == "electricitymaps":
            kw = {"base_url": c.electricitymaps_url} if c.electricitymaps_url else {}
            return ElectricityMapsSource(c.zone, trace, c.electricitymaps_token_env, **kw)
        return trace

    # -- the hour
    def tick(self) -> None:
        """Start a new hour when the clock has passed into one: read the CI, re-solve, maybe run the evaluator."""
        t = self.clock()
        key = hour_of_year(t)
        if key == self.hour_key:
            return
        self.hour_key = key
        reading = self.ci_source.read(t)
        self.ci = reading
        weights, n_req = None, None
        if self.mix is not None:
            got = self.mix(key[1])
            if got is not None:
                weights, n_req = got
        if n_req is None:
            last = self.hours[-1] if self.hours else None
            done = sum(last.levels.values()) + last.pinned if last else 0
            n_req = self.cfg.requests_per_hour or (done if done > 0 else default_requests_per_hour(self.profile))
        ci = reading.ci_g_per_kwh if reading.ci_g_per_kwh is not None else 0.0
        due = self.planner.new_hour(key[1], ci, weights, n_req)
        plan = self.planner.plan
        self.hours.append(HourCounts(hour_start_iso(t), reading.ci_g_per_kwh, dict(zip(plan.levels, plan.x))))
        if due:
            self._run_evaluator(self.planner.t, key[1])

    def _run_evaluator(self, t: int, hour: int) -> None:
        if self.evaluator is None:
            self.evaluator_last = {"due_at_hour": hour_start_iso(self.clock()), "status": "not configured (give --judge "
                                   "and --store-prompts or --eval-prompts): q stays the profile's"}
            return
        out = self.evaluator(self, t, hour)
        if asyncio.iscoroutine(out):  # a live evaluator: runs in the background, hands verdicts in later
            with contextlib.suppress(RuntimeError):
                self.evaluator_task = asyncio.get_running_loop().create_task(out)
            return
        if out is not None:
            q_task, n_task = out
            self.planner.add_verdicts(q_task, n_task, t)
            self.evaluator_last = {"at_hour": hour_start_iso(self.clock()), "status": "done",
                                   "verdicts": float(sum(n_task))}

    def assign(self, pinned: str | None, task: str | None = None) -> tuple[str, bool]:
        self.tick()
        cur = self.hours[-1]
        if pinned is not None:
            cur.pinned += 1
            return pinned, True
        plan = self.planner.plan
        i = self.stream.next(plan.hour, plan.x_for(task))
        lv = self.levels[i]
        cur.levels[lv] += 1
        return lv, False

    def settings(self) -> CarbonSettings:
        r = self.ci
        ic = carbon.IntensityChoice(r.ci_g_per_kwh if r else None, r.zone if r else None,
                                    f"{r.source}; {r.signal}" if r else "unknown")
        return CarbonSettings(ic, self.cfg.pue, self.embodied)

    def status(self) -> dict[str, Any]:
        self.tick()
        plan = self.planner.plan
        cur = self.hours[-1]
        qt, nt, src = self.planner.q_estimate()
        return {
            "model": self.model_name, "upstream": self.base_url, "policy": self.cfg.policy,
            "hour": cur.hour, "x": dict(zip(plan.levels, plan.x)), "theta": plan.theta,
            "x_task": ({t: dict(zip(plan.levels, v)) for t, v in plan.x_task.items()} if plan.x_task else None),
            "xi": self.cfg.xi, "confidence": self.cfg.confidence,
            "ci_g_per_kwh": self.ci.ci_g_per_kwh if self.ci else None, "ci_source": self.ci.source if self.ci else None,
            "ci_signal": self.ci.signal if self.ci else None,
            "cost_g_per_request": dict(zip(plan.levels, plan.cost_g)), "q": {"mu": dict(zip(plan.levels, plan.mu)),
                                                                            "source": src},
            "evaluator": {"last": self.evaluator_last, "runs_at_served_hours": list(self.planner.evaluator_runs)},
            "served_this_hour": {**{lv: int(cur.levels.get(lv, 0)) for lv in self.levels}, "pinned": cur.pinned},
            "served_total": self.served, "failed_total": self.failed,
            "energy": self.meter_note,
            "store": {"enabled": self.recorder is not None, "prompts_stored": self.cfg.store_prompts,
                      "written": self.recorder.written if self.recorder else 0,
                      "errors": self.recorder.errors[-3:] if self.recorder else []},
        }


# --------------------------------------------------------------------------- request handling
def place_directive(messages: list[dict], directive: Directive, placement: str) -> list[dict]:
    """The client's messages with the directive placed: a system message first (merged into an existing
    first system message) or appended to the last user turn; L0 (empty) leaves them as they are."""
    out = [dict(m) for m in messages]
    if directive.is_empty:
        return out
    if placement == "system":
        if out and out[0].get("role") == "system" and isinstance(out[0].get("content"), str):
            out[0]["content"] = f"{directive.text}\n\n{out[0]['content']}"
        else:
            out.insert(0, {"role": "system", "content": directive.text})
        return out
    for m in reversed(out):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, str):
                m["content"] = f"{c.rstrip()} {directive.text}"
            elif isinstance(c, list):
                m["content"] = list(c) + [{"type": "text", "text": directive.text}]
            return out
    out.append({"role": "user", "content": directive.text})
    return out


def check_body(raw: bytes, cfg: GatewayConfig) -> dict:
    """The request body as a dict, or :class:`BadRequest` with the reason."""
    if len(raw) > cfg.max_body_bytes:
        raise BadRequest(f"request body is {len(raw):,} bytes; this gateway accepts at most {cfg.max_body_bytes:,}",
                         status=413, code="body_too_large")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise BadRequest("'messages' must be a non-empty list of {role, content} objects", "messages")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise BadRequest(f"messages[{i}] must be an object with a 'role'", "messages")
        if m.get("role") not in ("system", "user", "assistant", "tool", "developer", "function"):
            raise BadRequest(f"messages[{i}].role {m.get('role')!r} is not a chat role", "messages")
        c = m.get("content")
        if c is not None and not isinstance(c, (str, list)):
            raise BadRequest(f"messages[{i}].content must be a string or a list of parts", "messages")
    n = body.get("n", 1)
    if n not in (1, None):
        raise BadRequest("this gateway answers one choice per request (n = 1)", "n")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise BadRequest("'stream' must be true or false", "stream")
    for key in ("max_tokens", "max_completion_tokens"):
        v = body.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise BadRequest(f"'{key}' must be a whole number ≥ 1", key)
        if v > cfg.max_tokens:
            raise BadRequest(f"'{key}' is {v:,}; this gateway allows at most {cfg.max_tokens:,} tokens per answer", key)
    return body


def energy_label(method: str, source: str) -> str:
    """``measured (…)`` / ``estimated (…)`` / ``reference (…)`` / ``n/a (…)`` from a meter's method and source."""
    kind = method.split(":", 1)[0] if method and method != "n/a" else "n/a"
    return f"{kind} ({method}): {source}" if kind != "n/a" else f"n/a: {source}"


@dataclass
class Answer:
    """What the upstream streamed for one request (filled as it arrives)."""

    id: str
    created: int
    text: list[str] = field(default_factory=list)
    chunks: int = 0
    finish: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_s: float | None = None
    error: str | None = None
    aborted: bool = False
    hour: str = ""
    upstream_id: str | None = None
    placement: str = ""
    max_tokens: int | None = None
    task: str | None = None


class UpstreamPool:
    """Several ``httpx.AsyncClient`` s used in turn. httpcore's pool scans its connections once per idle
    connection each time a request starts or ends (quadratic in the connections), which dominated the
    gateway's CPU with 32 streams on one pool; a few small pools keep each scan short."""

    def __init__(self, base_url: str, timeout_s: float, shards: int = SHARDS) -> None:
        t = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
        self.clients = [httpx.AsyncClient(base_url=base_url, timeout=t,
                                          limits=httpx.Limits(max_connections=None, max_keepalive_connections=16))
                        for _ in range(max(1, shards))]
        self._k = 0

    def _next(self) -> httpx.AsyncClient:
        self._k = (self._k + 1) % len(self.clients)
        return self.clients[self._k]

    def build_request(self, *a, **kw) -> httpx.Request:
        return self.clients[0].build_request(*a, **kw)

    async def send(self, request: httpx.Request, **kw) -> httpx.Response:
        return await self._next().send(request, **kw)

    async def get(self, *a, **kw) -> httpx.Response:
        return await self._next().get(*a, **kw)

    async def aclose(self) -> None:
        for c in self.clients:
            await c.aclose()


def create_app(config: GatewayConfig, clock: Callable[[], float] = time.time, upstream: httpx.AsyncClient | None = None,
               meter=None, evaluator=None, mix=None, classifier=None, prediction_cond=None) -> FastAPI:
    """The gateway app (see the module docstring)."""
    own_client = upstream is None
    base = normalize_base_url(config.upstream)
    client = upstream or UpstreamPool(base, config.timeout_s)
    state = GatewayState(config, clock, client, meter, evaluator, mix, classifier)
    if config.policy == "sprout-task" and classifier is not None:
        state.planner.cond = prediction_cond

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await _discover(state)
        _setup_meter(state)
        if config.policy == "sprout-task" and state.classify is None:
            await asyncio.to_thread(_load_classifier, state)
        if evaluator is None and config.judge:
            try:
                from sprout_core.gateway.evaluator import live_evaluator
            except ImportError:
                state.evaluator_last = {"status": "the live evaluator is not built yet: q stays the profile's"}
            else:
                state.evaluator = live_evaluator(config, complete)
        try:
            yield
        finally:
            if state.evaluator_task is not None:
                state.evaluator_task.cancel()
            if state.recorder is not None:
                state.recorder.close()
            if own_client:
                await client.aclose()

    app = FastAPI(title="Sprout gateway", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sprout = state

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):  # never a stack trace to a client, never a dead gateway
        return openai_error(500, f"gateway error: {type(exc).__name__}: {exc}", "server_error", "internal_error")

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": state.model_name, "upstream": state.base_url, "policy": config.policy}

    @app.get("/v1/models")
    async def models():
        if state.model_name is None:
            await _discover(state)
        name = state.model_name or "unknown"
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "sprout-gateway"}]}

    @app.get("/sprout/status")
    async def status():
        return state.status()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        try:
            if int(request.headers.get("content-length") or 0) > config.max_body_bytes:
                raise BadRequest(f"request body is over {config.max_body_bytes:,} bytes", status=413,
                                 code="body_too_large")
            raw = b""
            async for part in request.stream():
                raw += part
                if len(raw) > config.max_body_bytes:
                    raise BadRequest(f"request body is over {config.max_body_bytes:,} bytes", status=413,
                                     code="body_too_large")
            body = check_body(raw, config)
            pin = request.headers.get(LEVEL_HEADER)
            if pin is not None:
                pin = pin.strip().upper()
                if pin not in state.levels:
                    raise BadRequest(f"X-Sprout-Level must be one of {', '.join(state.levels)}, not "
                                     f"{request.headers.get(LEVEL_HEADER)!r}", "X-Sprout-Level")
            if state.model_name is None:
                await _discover(state)
            if state.model_name is None:
                raise UpstreamFailure(502, f"the upstream at {state.base_url} lists no model and none was given "
                                           "(--model-name)", "upstream_no_model")
            asked = body.get("model")
            if asked not in (None, "", state.model_name):
                raise BadRequest(f"this gateway serves {state.model_name!r}, not {asked!r}", "model", status=404,
                                 code="model_not_found")
        except BadRequest as exc:
            return openai_error(exc.status, str(exc), "invalid_request_error", exc.code, exc.param)
        except UpstreamFailure as exc:
            return openai_error(exc.status, str(exc), "upstream_error", exc.code)
        task = None
        if state.classify is not None and pin is None:
            task = await asyncio.to_thread(state.classify, _prompt_text(body["messages"]))
        level, pinned = state.assign(pin, task)
        return await _serve(state, body, level, pinned, task)

    return app


def _load_classifier(state: GatewayState) -> None:
    """sprout-task: the reference task classifier (trained once, cached in the state folder) and its held-out
    misclassification model, which the per-task plan accounts for."""
    from sprout_core.tasks import classifier as tc
    from sprout_core.tasks import sim as task_sim

    clf = tc.reference_classifier()
    state.planner.cond = task_sim.reference_prediction_models(state.profile, clf)[0].cond
    state.classify = lambda text: clf.predict(text)[0].task
    if state.planner.ci is not None:
        state.planner.plan = state.planner.solve(state.planner.plan.evaluator_due if state.planner.plan else False)


async def _discover(state: GatewayState) -> None:
    """The model name from the upstream's ``/models`` (first listed) when not configured; silent on failure
    (the first request tries again and says why)."""
    if state.model_name is not None:
        return
    try:
        r = await state.upstream.get(f"{state.base_url}/models", headers=_auth(state), timeout=10.0)
        if r.status_code == 200:
            data = r.json()
            entries = data.get("data") if isinstance(data, dict) else data
            ids = [e.get("id") for e in entries or [] if isinstance(e, dict) and e.get("id")]
            if ids:
                state.model_name = str(ids[0])
    except (httpx.HTTPError, ValueError, AttributeError):
        pass


def _setup_meter(state: GatewayState) -> None:
    """The energy source: an injected meter, the upstream's own meter when it runs here, else EcoLogits."""
    cfg = state.cfg
    if cfg.energy == "none":
        state.meter, state.meter_note = None, "energy switched off (--energy none): n/a"
        return
    if state.meter is None and cfg.energy == "auto":
        import os

        from sprout_core.serving.client import ENV_GPUS, ENV_PID, ServerConfig, parse_indices
        from sprout_core.serving.energy import server_meter

        try:
            pid = os.environ.get(ENV_PID, "").strip()
            m = server_meter(ServerConfig(state.base_url, state.model_name, cfg.api_key_env,
                                          gpu_indices=parse_indices(os.environ.get(ENV_GPUS)),
                                          pid=int(pid) if pid.isdigit() else None))
        except Exception as exc:  # noqa: BLE001 - metering is optional; say why
            _log.warning("metering is optional; say why: %s", exc)
            state.meter_note = f"no meter for the upstream ({type(exc).__name__}: {exc})"
            m = None
        if m is not None and m.available:
            from sprout_core.energy import AttributedMeter
            from sprout_core.gateway.metering import PolledMeter

            state.meter = AttributedMeter(PolledMeter(m.inner))
        elif m is not None:
            state.meter_note = m.describe()
    if state.meter is not None:
        state.meter_note = state.meter.describe()
    else:
        state.meter_note = (f"{state.meter_note + '; ' if state.meter_note else ''}EcoLogits estimate per request "
                            "(the upstream cannot be metered from here)")


def _auth(state: GatewayState) -> dict[str, str]:
    key = os.environ.get(state.cfg.api_key_env or "")
    return {"Authorization": f"Bearer {key}"} if key else {}


def _directives(state: GatewayState):
    """The served model's directive placement and set (read once per model name, not per request)."""
    key = state.model_name or ""
    hit = state.directive_cache.get(key)
    if hit is None:
        dcfg = config_for_model(key)
        hit = state.directive_cache[key] = (dcfg, load_directive_set(dcfg.directive_set))
    return hit


def _upstream_body(state: GatewayState, body: dict, level: str) -> tuple[dict, Directive, str]:
    dcfg, dset = _directives(state)
    try:
        directive = dset.get(level)
    except (KeyError, ValueError):
        directive = Directive(level, "")
    up = {k: v for k, v in body.items() if k not in ("stream_options", "n")}
    up["model"] = state.model_name
    up["messages"] = place_directive(body["messages"], directive, dcfg.placement)
    up["stream"] = True
    up["stream_options"] = {"include_usage": True}
    if up.get("max_tokens") is None and up.get("max_completion_tokens") is None:
        up["max_tokens"] = state.cfg.max_tokens
    return up, directive, dcfg.placement


def _upstream_error(status: int, raw: bytes) -> UpstreamFailure:
    try:
        obj = json.loads(raw.decode("utf-8", errors="replace"))
        err = obj.get("error") if isinstance(obj, dict) else None
        msg = (err.get("message") if isinstance(err, dict) else err) or (obj.get("detail") if isinstance(obj, dict) else None)
    except ValueError:
        msg = None
    msg = str(msg or raw[:300].decode("utf-8", errors="replace") or "no body")
    if status in (400, 413, 422):
        return UpstreamFailure(400, f"the upstream refused the request (HTTP {status}): {msg}", "upstream_rejected")
    if status == 429:
        return UpstreamFailure(429, f"the upstream is overloaded (HTTP 429): {msg}", "upstream_overloaded")
    return UpstreamFailure(502, f"the upstream failed (HTTP {status}): {msg}", "upstream_error")


@dataclass
class _Call:
    """One upstream call in flight: the answer so far, its energy window, clock, directive and carbon settings."""

    ans: Answer
    window: Any
    t0: float
    directive: Directive
    settings: CarbonSettings


async def _open(state: GatewayState, body: dict, level: str) -> tuple[_Call, httpx.Response | None, UpstreamFailure | None]:
    """Start the upstream call (energy window open): the streaming response, or why it failed."""
    up, directive, placement = _upstream_body(state, body, level)
    settings = state.settings()
    t0 = time.perf_counter()
    window = state.meter.window() if state.meter is not None else None
    if window is not None:
        window.__enter__()
    ans = Answer(id=f"chatcmpl-sprout-{uuid.uuid4().hex[:24]}", created=int(state.clock()),
                 hour=state.hours[-1].hour if state.hours else "",
                 placement=placement, max_tokens=up.get("max_tokens") or up.get("max_completion_tokens"))
    call = _Call(ans, window, t0, directive, settings)
    try:
        req = state.upstream.build_request("POST", f"{state.base_url}/chat/completions", json=up,
                                           headers={**_auth(state), "Accept": "text/event-stream"})
        resp = await state.upstream.send(req, stream=True)
    except httpx.TimeoutException as exc:
        return call, None, UpstreamFailure(504, f"the upstream at {state.base_url} did not answer within "
                                                f"{state.cfg.timeout_s:g} s ({type(exc).__name__})", "upstream_timeout")
    except httpx.HTTPError as exc:
        return call, None, UpstreamFailure(502, f"cannot reach the upstream at {state.base_url}: {type(exc).__name__}: "
                                                f"{exc}", "upstream_unreachable")
    if resp.status_code != 200:
        raw = await resp.aread()
        await resp.aclose()
        return call, None, _upstream_error(resp.status_code, raw)
    return call, resp, None


async def complete(state: GatewayState, body: dict, level: str, pinned: bool = False, origin: str = ORIGIN,
                   directive_free: bool = False) -> tuple[Answer, dict[str, Any]]:
    """One whole answer through the upstream, metered and recorded with ``origin`` (the evaluator's path);
    ``directive_free``: no directive (a judge call, recorded as level ``judge``)."""
    lv = "judge" if directive_free else level
    call, resp, fail = await _open(state, body, lv)
    if fail is not None:
        call.ans.error = str(fail)
    else:
        events = _events(state, resp, call.ans, call.window, call.t0)
        try:
            async for _ in events:
                pass
        finally:
            await events.aclose()
    sp = _finish(state, call.ans, call.window, call.t0, body, lv, pinned, call.directive, call.settings, origin)
    return call.ans, sp


async def _serve(state: GatewayState, body: dict, level: str, pinned: bool, task: str | None = None):
    call, resp, fail = await _open(state, body, level)
    call.ans.task = task
    ans, window, t0, directive, settings = call.ans, call.window, call.t0, call.directive, call.settings
    if fail is not None:
        return _fail(state, fail, ans, window, t0, body, level, pinned, directive, settings)
    events = _events(state, resp, ans, window, t0)
    if body.get("stream"):
        return StreamingResponse(_stream_out(state, events, ans, window, t0, body, level, pinned, directive, settings),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    try:
        async for _ in events:
            pass
    finally:
        await events.aclose()
    sp = _finish(state, ans, window, t0, body, level, pinned, directive, settings)
    if ans.error and not ans.text:
        code = 504 if "did not send" in ans.error else 502
        return openai_error(code, ans.error, "upstream_error", "upstream_stream_error")
    msg: dict[str, Any] = {"role": "assistant", "content": "".join(ans.text)}
    return JSONResponse({
        "id": ans.id, "object": "chat.completion", "created": ans.created, "model": state.model_name,
        "choices": [{"index": 0, "message": msg, "finish_reason": ans.finish or ("error" if ans.error else "stop"),
                     "logprobs": None}],
        "usage": _usage(ans), "sprout": sp,
    })


def _usage(ans: Answer) -> dict[str, int | None]:
    ct = ans.completion_tokens if ans.completion_tokens is not None else ans.chunks
    pt = ans.prompt_tokens
    return {"prompt_tokens": pt if pt is not None else 0, "completion_tokens": ct,
            "total_tokens": (pt or 0) + ct}


async def _events(state: GatewayState, resp: httpx.Response, ans: Answer, window, t0: float) -> AsyncIterator[list[str]]:
    """The upstream's content chunks as raw event data, a list per network read (forwarded as they are: one
    JSON parse per chunk, no re-serialisation, one write per read); usage is kept in ``ans`` and the usage-only
    chunk dropped (the gateway sends its own at the end). Errors end it with ``ans.error`` set. After
    ``[DONE]`` the body is read to its end, so the connection goes back to the pool."""
    parser = SSEParser()
    done = False
    try:
        async for data in resp.aiter_raw():
            if done:
                continue
            batch: list[str] = []
            for ev in parser.feed(data):
                if ev.event == "error":
                    ans.error = f"the upstream reported an error mid-answer: {ev.data[:300]}"
                    break
                raw = ev.data
                if raw.strip() == "[DONE]":
                    done = True
                    break
                try:
                    obj = json.loads(raw)
                except ValueError:
                    obj = None
                choices = obj.get("choices") if isinstance(obj, dict) else None
                c0 = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
                delta = c0.get("delta") if c0 is not None else None
                usage = obj.get("usage") if isinstance(obj, dict) else None
                if c0 is None or not isinstance(delta, dict) or usage or obj.get("error"):
                    try:  # anything but a plain content chunk: the project's one reader of the format
                        d = parse_chunk(raw)
                    except ChunkFormatError as exc:
                        ans.error = f"the upstream sent an event that is not a chat-completion chunk ({exc})"
                        break
                    if d.error:
                        ans.error = f"the upstream reported an error mid-answer: {d.error}"
                        break
                    if d.prompt_tokens is not None:
                        ans.prompt_tokens = d.prompt_tokens
                    if d.completion_tokens is not None:
                        ans.completion_tokens = d.completion_tokens
                    if d.finish_reason:
                        ans.finish = d.finish_reason
                    if not choices:
                        continue
                    obj.pop("usage", None)
                    raw = json.dumps(obj, ensure_ascii=False)
                    text = d.text
                else:
                    piece = delta.get("content")
                    text = piece if isinstance(piece, str) else ""
                    if c0.get("finish_reason"):
                        ans.finish = c0["finish_reason"]
                if ans.upstream_id is None and isinstance(obj, dict) and isinstance(obj.get("id"), str):
                    ans.upstream_id = obj["id"]
                if text:
                    if ans.ttft_s is None:
                        ans.ttft_s = time.perf_counter() - t0
                    ans.text.append(text)
                    ans.chunks += 1
                    if window is not None:
                        window.add_tokens(ans.chunks)
                batch.append(raw)
            if batch:
                yield batch
            if ans.error:
                return
        if ans.finish is None and not done:
            ans.error = (f"the upstream closed the stream after {ans.chunks} chunks without finishing the answer "
                         "— did it stop or crash?")
    except httpx.TimeoutException:
        ans.error = f"the upstream did not send anything for {state.cfg.timeout_s:g} s (timeout) after {ans.chunks} chunks"
    except httpx.HTTPError as exc:
        ans.error = f"the connection to the upstream broke after {ans.chunks} chunks ({type(exc).__name__}: {exc})"
    finally:
        await resp.aclose()


async def _stream_out(state, events, ans: Answer, window, t0, body, level, pinned, directive, settings):
    done = False
    try:
        async for batch in events:
            yield "".join(f"data: {raw}\n\n" for raw in batch)
        sp = _finish(state, ans, window, t0, body, level, pinned, directive, settings)
        done = True
        final = {"id": ans.upstream_id or ans.id, "object": "chat.completion.chunk", "created": ans.created, "model": state.model_name,
                 "choices": [], "usage": _usage(ans), "sprout": sp}
        yield f"data: {json.dumps(final, ensure_ascii=False)}\n\n"
        if ans.error:
            err = {"error": {"message": ans.error, "type": "upstream_error", "param": None, "code": "upstream_stream_error"}}
            yield f"data: {json.dumps(err)}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        if not done:  # the client went away: the partial answer is recorded, marked aborted
            ans.aborted = True
            await events.aclose()
            _finish(state, ans, window, t0, body, level, pinned, directive, settings)


def _fail(state, fail: UpstreamFailure, ans: Answer, window, t0, body, level, pinned, directive, settings):
    ans.error = str(fail)
    _finish(state, ans, window, t0, body, level, pinned, directive, settings)
    return openai_error(fail.status, str(fail), "upstream_error" if fail.status >= 500 else "invalid_request_error",
                        fail.code)


def _finish(state: GatewayState, ans: Answer, window, t0: float, body: dict, level: str, pinned: bool,
            directive: Directive, settings: CarbonSettings, origin: str = ORIGIN) -> dict[str, Any]:
    """Close the energy window, price the request, write its row (one :class:`~sprout_core.record.AnswerRecord`),
    and return the ``sprout`` object."""
    placement, up_max = ans.placement, ans.max_tokens
    total_s = time.perf_counter() - t0
    ct = ans.completion_tokens if ans.completion_tokens is not None else ans.chunks
    low = high = None
    if window is not None:
        window.__exit__(None, None, None)
        rd = window.reading
        energy_j, method, source = rd.energy_j, rd.method, rd.source
        unc = rd.uncertainty_j
        flags = ",".join(rd.flags) or None
        label = energy_label(method, source)
        power = rd.power_w_mean
    else:
        unc = flags = power = None
        if state.cfg.energy == "none":
            energy_j, method, label, source = None, "n/a", "n/a: energy switched off (--energy none)", "switched off"
        else:
            host = httpx.URL(state.base_url).host
            est = ecologits_energy(state.model_name or "", ct, total_s,
                                   state.cfg.ecologits_provider or provider_for(host)) if ct else None
            if est is None:
                energy_j, method, label, source = None, "n/a", "n/a: no tokens were generated", "none"
            elif est.energy_j is None:
                energy_j, method, label, source = None, "n/a", f"n/a: {est.reason}", est.reason
            else:
                energy_j, method, source = est.energy_j, "estimated:ecologits", est.label
                low, high, label = est.low_j, est.high_j, est.label
    acc = settings.price_energy(energy_j, total_s, method)
    status = "aborted" if ans.aborted else ("error" if ans.error else "ok")
    finish = "aborted" if ans.aborted else ("error" if ans.error else sse_finish(ans.finish))
    sp: dict[str, Any] = {
        "level": level, "pinned": pinned, "directive": directive.text, "prompt_tokens": ans.prompt_tokens,
        "completion_tokens": ct, "energy_j": energy_j, "energy_label": label,
        "carbon_g": acc.total_g, "carbon_operational_g": acc.operational_g, "carbon_embodied_g": acc.embodied_g,
        "ci_g_per_kwh": settings.intensity.ci_g_per_kwh, "ci_source": state.ci.source if state.ci else None,
        "ci_signal": state.ci.signal if state.ci else None, "pue": state.cfg.pue, "hour": ans.hour,
        "task": ans.task,
        "status": status,
    }
    if low is not None:
        sp["energy_j_low"], sp["energy_j_high"] = low, high
    if origin == ORIGIN:  # client traffic (the evaluator's answers are charged in the store, not counted here)
        if status == "ok":
            state.served += 1
        else:
            state.failed += 1
        if state.cfg.store_prompts:
            state.recent.append((_prompt_text(body.get("messages") or []), None))
    if state.recorder is not None:
        keep = state.cfg.store_prompts
        url = httpx.URL(state.base_url)
        rec = AnswerRecord(
            level=level, prompt=_prompt_text(body.get("messages") or []) if keep else "", directive=directive.text,
            backend="gateway", model=state.model_name or "", device=f"upstream:{url.host}:{url.port or ''}",
            placement=placement, max_new_tokens=up_max, origin=origin, pinned=pinned, run_id=ans.hour,
            text="".join(ans.text) if keep else "", prompt_tokens=ans.prompt_tokens, new_tokens=ct, ttft_s=ans.ttft_s,
            total_s=total_s, tokens_per_s=ct / total_s if total_s > 0 and ct else None, finish_reason=finish,
            partial=bool(ans.text) and status != "ok", error=ans.error, energy_j=energy_j, energy_method=method,
            energy_source=source, energy_uncertainty_j=unc, energy_j_low=low, energy_j_high=high,
            energy_flags=tuple(flags.split(",")) if flags else (), power_w_mean=power, zone=settings.intensity.zone,
            ci_g_per_kwh=settings.intensity.ci_g_per_kwh, ci_label=settings.intensity.label,
            ci_source=state.ci.source if state.ci else None, hour_utc=ans.hour, pue=acc.pue,
            carbon_operational_g=acc.operational_g, carbon_embodied_g=acc.embodied_g, carbon_total_g=acc.total_g,
            embodied_model=acc.embodied_name, task=ans.task)
        state.recorder.put(rec)
    return sp


def _prompt_text(messages: list[dict]) -> str:
    """The last user turn's text (what History shows as the prompt)."""
    for m in reversed(messages):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, str):
                return c
            if isinstance(c, list):
                return " ".join(p.get("text", "") for p in c if isinstance(p, dict))
    return ""
