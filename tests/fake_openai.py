"""A scripted OpenAI-compatible server on 127.0.0.1 for unit tests of the server backend (no model inside).

``mode`` decides how ``/v1/chat/completions`` answers: ``ok`` (streams ``words``), ``usage`` (ok + a usage
block), ``chunked`` (ok over HTTP/1.1 chunked encoding), ``cut`` (a few words, then the connection drops),
``cut_chunked`` (the same inside chunked encoding), ``stall`` (a few words, then silence), ``http500``,
``http400_ctx``, ``model404``, ``quota`` (HTTP 429 ``insufficient_quota``), ``error_event``, ``garbage``, ``interrupted`` (``[DONE]`` after a few words,
with no finish reason, as llama-cpp-python's server does to an answer it interrupts).
Misbehaving servers (issue 20.4): ``forever`` (ignores ``max_tokens`` and streams words until the client
hangs up), ``usage_negative`` / ``usage_huge`` (a usage block of −5 / 10¹⁵ tokens), ``stall_headers``
(accepts the request, never answers), ``keepalive`` (a few words, then only ``: ping`` comments),
``endless_line`` (one data line that never ends), ``malformed`` (a few words, then broken JSON).
``models=None`` makes ``/v1/models`` a 404.
``key``: a required Bearer key (401 otherwise). Every request body is kept in ``requests``.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI:
    def __init__(self, models=("fake-llama-2-7b-chat",), words=None, delay_s=0.0, key=None):
        self.models = list(models) if models is not None else None
        self.words = list(words or ["The", " sky", " is", " blue", " because", " of", " Rayleigh", " scattering", "."])
        self.delay_s = delay_s
        self.key = key
        self.mode = "ok"
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.stall_s = 5.0
        self._srv: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        return self._srv.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "FakeOpenAI":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *a):  # quiet
                pass

            def _json(self, code, obj):
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _authorised(self) -> bool:
                if fake.key and self.headers.get("Authorization") != f"Bearer {fake.key}":
                    self._json(401, {"error": {"message": "invalid api key", "type": "auth"}})
                    return False
                return True

            def do_GET(self):
                if not self._authorised():
                    return
                if self.path.rstrip("/") == "/v1/models" and fake.models is not None:
                    self._json(200, {"object": "list", "data": [{"id": m, "object": "model", "max_model_len": 4096}
                                                                for m in fake.models]})
                else:
                    self._json(404, {"detail": "Not Found"})

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"{}")
                fake.requests.append(body)
                fake.headers.append(dict(self.headers))
                if not self._authorised():
                    return
                mode = fake.mode
                if self.path != "/v1/chat/completions":
                    return self._json(404, {"detail": "Not Found"})
                if mode == "http500":
                    return self._json(500, {"error": {"message": "CUDA out of memory"}})
                if mode == "quota":
                    return self._json(429, {"error": {"message": "You exceeded your current quota.",
                                                      "type": "insufficient_quota", "code": "insufficient_quota"}})
                if mode == "http400_ctx":
                    return self._json(400, {"error": {"message": "This model's maximum context length is 4096 tokens"}})
                if mode == "model404":
                    return self._json(404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}})
                if mode == "stall_headers":
                    time.sleep(fake.stall_s)
                    return
                chunked = mode in ("chunked", "cut_chunked")
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

                def send(data: str):
                    raw = f"data: {data}\n\n".encode()
                    if chunked:
                        raw = f"{len(raw):x}\r\n".encode() + raw + b"\r\n"
                    self.wfile.write(raw)
                    self.wfile.flush()

                if mode == "garbage":
                    send("this is not json")
                    return
                try:
                    if mode == "forever":
                        k = 0
                        while True:  # until the client hangs up (BrokenPipe ends the handler)
                            send(json.dumps({"choices": [{"index": 0, "delta": {"content": f" w{k}"}}]}))
                            k += 1
                            if k % 50 == 0:
                                time.sleep(0.001)
                    if mode == "endless_line":
                        self.wfile.write(b"data: {\"choices\": [{\"delta\": {\"content\": \"")
                        while True:
                            self.wfile.write(b"x" * 65536)
                    if mode in ("keepalive", "malformed"):
                        for w in fake.words[:3]:
                            send(json.dumps({"choices": [{"index": 0, "delta": {"content": w}}]}))
                        if mode == "malformed":
                            send('{"choices": [{"delta": {"content": "broken')
                            return
                        end = time.time() + fake.stall_s
                        while time.time() < end:
                            self.wfile.write(b": ping\n\n")
                            self.wfile.flush()
                            time.sleep(0.05)
                        return
                except (BrokenPipeError, ConnectionResetError):
                    return
                send(json.dumps({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}))
                limit = int(body.get("max_tokens") or 10**6)
                words = fake.words[:limit]
                for k, w in enumerate(words):
                    if mode in ("cut", "cut_chunked", "stall", "error_event", "interrupted") and k == 3:
                        if mode == "interrupted":
                            send("[DONE]")
                            return
                        if mode == "stall":
                            time.sleep(fake.stall_s)
                            return
                        if mode == "error_event":
                            self.wfile.write(b'event: error\ndata: {"error": {"message": "engine died"}}\n\n')
                            return
                        if chunked:
                            self.wfile.write(b"ff\r\ndata: {\"cho")  # a chunk that never completes
                            self.wfile.flush()
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    send(json.dumps({"model": body.get("model"),
                                     "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]}))
                    if fake.delay_s:
                        time.sleep(fake.delay_s)
                reason = "length" if len(words) < len(fake.words) else "stop"
                send(json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}))
                if mode == "usage":
                    send(json.dumps({"choices": [], "usage": {"prompt_tokens": 21, "completion_tokens": len(words) + 1}}))
                if mode == "usage_negative":
                    send(json.dumps({"choices": [], "usage": {"prompt_tokens": -5, "completion_tokens": -5}}))
                if mode == "usage_huge":
                    send(json.dumps({"choices": [], "usage": {"prompt_tokens": 10**15, "completion_tokens": 10**15}}))
                send("[DONE]")
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")

        self._srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._srv.daemon_threads = True
        threading.Thread(target=self._srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._srv is not None:
            self._srv.shutdown()
            self._srv.server_close()
