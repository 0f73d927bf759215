"""Fakes for the gateway's tests and benchmark: an OpenAI-compatible upstream (ASGI, no model inside) that
streams at a fixed rate, and a fake Electricity Maps API.

``FakeUpstream.mode``: ``ok``; ``http500``; ``http400``; ``garbage`` (a non-JSON event); ``cut`` (a few words, then
the stream ends without a finish reason); ``stall`` (a few words, then silence); ``error_event``. Every request
body is kept in ``bodies``. Run it in process (``httpx.ASGITransport(app)``) or on a port (``serve_in_thread``).
"""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

WORDS = ["The", " sky", " is", " blue", " because", " of", " Rayleigh", " scattering", "."]


class FakeUpstream:
    def __init__(self, model: str = "fake-llama-2-7b-chat", words=None, token_interval_s: float = 0.0,
                 ttft_s: float = 0.0, n_tokens: int | None = None) -> None:
        self.model = model
        self.words = list(words or WORDS)
        self.token_interval_s = token_interval_s
        self.ttft_s = ttft_s
        self.n_tokens = n_tokens
        self.mode = "ok"
        self.judge_reply: str | None = None  #: the reply to a Sprout judge prompt (e.g. "Output (1)")
        self.stall_s = 5.0
        self.bodies: list[dict] = []
        self.app = Starlette(routes=[Route("/v1/models", self.models), Route("/v1/chat/completions", self.chat,
                                                                               methods=["POST"])])

    async def models(self, request: Request):
        return JSONResponse({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    def _words(self, limit: int) -> list[str]:
        if self.n_tokens is not None:
            return [f" w{k}" for k in range(min(self.n_tokens, limit))]
        return self.words[:limit]

    async def chat(self, request: Request):
        body = await request.json()
        self.bodies.append(body)
        mode = self.mode
        if mode == "http500":
            return JSONResponse({"error": {"message": "CUDA out of memory"}}, status_code=500)
        if mode == "http400":
            return JSONResponse({"error": {"message": "This model's maximum context length is 4096 tokens"}},
                                status_code=400)
        limit = int(body.get("max_tokens") or 10**6)
        words = self._words(limit)
        msgs = " ".join(str(m.get("content")) for m in body.get("messages") or [])
        if self.judge_reply is not None and "impartial evaluator" in msgs:
            words = [self.judge_reply]

        async def gen():
            def chunk(delta, finish=None):
                return "data: " + json.dumps({"id": "up-1", "object": "chat.completion.chunk", "model": body.get("model"),
                                              "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + "\n\n"
            if self.ttft_s:
                await asyncio.sleep(self.ttft_s)
            yield chunk({"role": "assistant", "content": ""})
            if mode == "garbage":
                yield "data: this is not json\n\n"
                return
            for k, w in enumerate(words):
                if k == 3 and mode == "cut":
                    return
                if k == 3 and mode == "stall":
                    await asyncio.sleep(self.stall_s)
                    return
                if k == 3 and mode == "error_event":
                    yield 'event: error\ndata: {"error": {"message": "engine died"}}\n\n'
                    return
                yield chunk({"content": w})
                if self.token_interval_s:
                    await asyncio.sleep(self.token_interval_s)
            reason = "length" if len(words) >= limit else "stop"
            yield chunk({}, reason)
            if (body.get("stream_options") or {}).get("include_usage"):
                yield "data: " + json.dumps({"id": "up-1", "choices": [], "usage": {
                    "prompt_tokens": 17, "completion_tokens": len(words), "total_tokens": 17 + len(words)}}) + "\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(gen(), media_type="text/event-stream")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """An ASGI app served by uvicorn on 127.0.0.1 in a daemon thread (``url``, ``stop()``)."""

    def __init__(self, app, port: int | None = None) -> None:
        import uvicorn

        self.port = port or free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on", timeout_graceful_shutdown=1))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ServerThread":
        self.thread.start()
        t0 = time.monotonic()
        while not self.server.started:
            if time.monotonic() - t0 > 20 or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def fake_electricitymaps(ci=123.0, factor="lifecycle", status=200, calls=None):
    """A fake of Electricity Maps' ``/v3/carbon-intensity/latest`` (ASGI app); ``calls`` collects the requests."""
    calls = calls if calls is not None else []

    async def latest(request: Request):
        calls.append({"zone": request.query_params.get("zone"), "token": request.headers.get("auth-token")})
        if status != 200:
            return JSONResponse({"message": "nope"}, status_code=status)
        return JSONResponse({"zone": request.query_params.get("zone"), "carbonIntensity": ci,
                             "datetime": "2026-12-07T11:00:00.000Z", "updatedAt": "2026-12-07T11:05:00.000Z",
                             "emissionFactorType": factor, "isEstimated": False, "estimationMethod": None})

    return Starlette(routes=[Route("/v3/carbon-intensity/latest", latest)])
