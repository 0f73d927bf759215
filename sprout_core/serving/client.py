"""Generation through an OpenAI-compatible serving engine (vLLM, llama.cpp server, Ollama, TGI, SGLang).

:class:`ServerModel` is a generation backend (see :mod:`sprout_core.generation`): ``info``,
``backend = "server"``, ``needs_lock = False`` and :meth:`ServerModel.open_stream`. A stream posts
``/v1/chat/completions`` with ``stream=true`` and reads the server-sent events in a reader thread
(so the token times used for energy attribution do not depend on how fast the page renders), and
ends with the same :class:`~sprout_core.generation.GenerationResult` as an in-process model.
Directives go into the messages exactly as for a local model (placement per model name in
``data/models.json``).

Failures have messages that say what to do: an unreachable server or a wrong model name raise
:class:`~sprout_core.errors.ServerError` when connecting; during an answer, a timeout, an HTTP error
or a stream cut mid-answer end the stream with ``result.error`` set, and a cut answer keeps the text
that arrived (``result.partial``).

The API key is read from an environment variable (``SPROUT_SERVER_API_KEY`` unless configured) at
each request: it is never stored, logged or shown. HTTP is the standard library's ``http.client``.
"""
from __future__ import annotations

import http.client
import json
import queue
import socket
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass, field, replace
from typing import Any, Iterator

from sprout_core.directives import Directive, Placement, config_for_model
from sprout_core.errors import ServerError
from sprout_core.generation import GenerationParams, StreamChunk
from sprout_core.models import ModelInfo
from sprout_core.serving.base import ChatStream, llama_cpp_sampling
from sprout_core.serving.config import (  # noqa: F401 - re-exported: the client's public names stay importable here
    DEFAULT_TOTAL_TIMEOUT_S,
    ENERGY_MODES,
    ENV_CONTEXT,
    ENV_ENERGY,
    ENV_GPUS,
    ENV_KEY,
    ENV_KEY_NAME,
    ENV_MODEL,
    ENV_PID,
    ENV_TIMEOUT,
    ENV_URL,
    ServerConfig,
    is_local_host,
    normalize_base_url,
    parse_indices,
)
from sprout_core.serving.sse import (
    ChunkFormatError,
    EventTooLarge,
    SSEParser,
    checked_usage,
    finish_reason,
    parse_chunk,
)

#: context length assumed when the server does not say (the server still rejects longer prompts)
DEFAULT_CONTEXT = 4096
#: while no token arrives (queued at the server, reading the prompt) the stream yields an empty chunk this often
HEARTBEAT_S = 0.5
#: finish reason of an answer whose consumer stopped reading early (the text is what had arrived)
ABORTED = "aborted"
#: the client's own token cap: it stops reading an answer past ``max_tokens`` + this margin (at least
#: TOKEN_CAP_MIN_MARGIN chunks, else TOKEN_CAP_MARGIN of max_tokens), whatever the server does
TOKEN_CAP_MARGIN = 0.10
TOKEN_CAP_MIN_MARGIN = 16
#: … and past this many characters per allowed token (a server sending huge chunks is cut as well)
MAX_CHARS_PER_TOKEN = 64
#: the most bytes a non-streamed reply (/models, an error body) is read to
MAX_BODY_BYTES = 8 << 20


def token_cap(max_tokens: int) -> int:
    """Streamed chunks after which the client stops reading an answer asked for ``max_tokens`` tokens."""
    m = max(1, int(max_tokens))
    return m + max(TOKEN_CAP_MIN_MARGIN, int(m * TOKEN_CAP_MARGIN + 0.999))


# --------------------------------------------------------------------------- HTTP
def _connection(cfg: ServerConfig, timeout: float) -> http.client.HTTPConnection:
    if cfg.base_url.startswith("https://"):
        return http.client.HTTPSConnection(cfg.host, cfg.port, timeout=timeout, context=ssl.create_default_context())
    return http.client.HTTPConnection(cfg.host, cfg.port, timeout=timeout)


def _headers(cfg: ServerConfig, stream: bool) -> dict[str, str]:
    h = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
    key = cfg.api_key()
    if key:
        h["Authorization"] = f"Bearer {key}"
    return h


def _path(cfg: ServerConfig, tail: str) -> str:
    return urllib.parse.urlsplit(cfg.base_url).path.rstrip("/") + tail


def unreachable_message(cfg: ServerConfig, exc: BaseException) -> str:
    """What to say when the server cannot be reached."""
    if isinstance(exc, socket.gaierror):
        why = f"the host name {cfg.host!r} is unknown"
    elif isinstance(exc, ConnectionRefusedError):
        why = "connection refused (nothing listens on that port)"
    elif isinstance(exc, (TimeoutError, socket.timeout)):
        why = f"the connection was not accepted within {cfg.timeout_s:g} s (is the host up, or a firewall dropping it?)"
    elif isinstance(exc, ssl.SSLError):
        why = f"TLS failed ({exc})"
    else:
        why = f"{type(exc).__name__}: {exc}"
    return (f"Cannot reach the server at {cfg.base_url}: {why}. Is it running? Start it (e.g. `python -m sprout_core "
            "serve` for llama.cpp on the embedded model, or `vllm serve MODEL`) or check the URL.")


def stalled_message(cfg: ServerConfig, tokens: int) -> str:
    """What to say when the server accepted the request but then sent nothing (no token) for the idle timeout."""
    where = f"after {tokens} tokens" if tokens else "before the first token"
    return (f"Stalled: the server at {cfg.base_url} accepted the request but sent no token for {cfg.timeout_s:g} s "
            f"({where}); Sprout stopped waiting and closed the connection. Is it overloaded or stuck?")


def _server_message(body: bytes) -> str:
    """The error text a server put in its body (OpenAI ``{"error": {"message": …}}``, FastAPI ``detail`` …)."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        obj = json.loads(text)
    except ValueError:
        return text[:300]
    if isinstance(obj, dict):
        err = obj.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
        if isinstance(err, str):
            return err[:300]
        for k in ("message", "detail"):
            if obj.get(k):
                return str(obj[k])[:300]
    return text[:300]


def http_error_message(cfg: ServerConfig, status: int, body: bytes, model: str | None,
                       served: list[str] | None = None) -> str:
    """What to say for an HTTP error status from the server (the key itself never appears)."""
    msg = _server_message(body)
    low = msg.lower()
    if status in (401, 403):
        if cfg.api_key():
            return (f"The server at {cfg.base_url} refused the API key in ${cfg.api_key_env} (HTTP {status}: {msg}). "
                    "Check the key.")
        return (f"The server at {cfg.base_url} needs an API key (HTTP {status}: {msg}). Set it in the environment "
                f"variable {cfg.api_key_env} before starting Sprout; it is read from there and never stored or shown.")
    if status == 404 and ("model" in low or "does not exist" in low or "not found" in low) and model:
        listed = f" It serves: {', '.join(served)}." if served else ""
        return f"The server at {cfg.base_url} has no model named {model!r} (HTTP 404: {msg}).{listed} Pick one of its models."
    if status == 404:
        return (f"The server at {cfg.base_url} has no {'/chat/completions'} endpoint (HTTP 404: {msg}): is this the "
                "base URL of an OpenAI-compatible API (usually ending in /v1)?")
    if status == 429:
        return f"The server at {cfg.base_url} is overloaded (HTTP 429: {msg}). Try again in a moment."
    if status == 400 and ("context" in low or "too long" in low or "maximum" in low or "exceed" in low):
        return f"The prompt does not fit the served model's context (HTTP 400: {msg}). Shorten it or lower max new tokens."
    if 400 <= status < 500:
        return f"The server at {cfg.base_url} rejected the request (HTTP {status}: {msg})."
    return f"The server at {cfg.base_url} failed (HTTP {status}: {msg})."


def list_models(cfg: ServerConfig) -> tuple[list[dict[str, Any]], float]:
    """The server's ``/models`` entries and the seconds the call took (ServerError if unreachable).

    An empty list when the server has no ``/models`` endpoint (some do not): the model name is then
    checked by the first request.
    """
    t0 = time.perf_counter()
    conn = _connection(cfg, min(cfg.timeout_s, 30.0))
    try:
        conn.request("GET", _path(cfg, "/models"), headers=_headers(cfg, stream=False))
        resp = conn.getresponse()
        body = resp.read(MAX_BODY_BYTES + 1)
    except (TimeoutError, socket.timeout) as exc:
        if conn.sock is None:
            raise ServerError(unreachable_message(cfg, exc)) from exc
        raise ServerError(f"Stalled: the server at {cfg.base_url} accepted the connection but did not answer /models "
                          f"within {min(cfg.timeout_s, 30.0):g} s. Is it overloaded, or still loading its model?") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise ServerError(unreachable_message(cfg, exc)) from exc
    finally:
        conn.close()
    if resp.status in (401, 403):
        raise ServerError(http_error_message(cfg, resp.status, body, cfg.model))
    if resp.status == 404:
        return [], time.perf_counter() - t0
    if resp.status != 200:
        raise ServerError(http_error_message(cfg, resp.status, body, cfg.model))
    if len(body) > MAX_BODY_BYTES:
        raise ServerError(f"Malformed: the server at {cfg.base_url} answered /models with more than "
                          f"{MAX_BODY_BYTES >> 20} MB; is this the base URL of an OpenAI-compatible API?")
    try:
        data = json.loads(body.decode("utf-8"))
        entries = data["data"] if isinstance(data, dict) else data
        entries = [e for e in entries if isinstance(e, dict) and e.get("id")]
    except (ValueError, KeyError, TypeError) as exc:
        raise ServerError(f"The server at {cfg.base_url} answered /models with something that is not an OpenAI model "
                          f"list ({exc}): is this the base URL of an OpenAI-compatible API?") from exc
    return entries, time.perf_counter() - t0


def _context_from(entry: dict[str, Any]) -> int | None:
    for k in ("max_model_len", "context_length", "context_window", "max_context_length"):
        v = entry.get(k)
        if isinstance(v, int) and v > 0:
            return v
    meta = entry.get("meta")
    if isinstance(meta, dict):
        for k in ("n_ctx", "n_ctx_train"):
            if isinstance(meta.get(k), int) and meta[k] > 0:
                return meta[k]
    return None


# --------------------------------------------------------------------------- backend
@dataclass
class ServerModel:
    """A model behind an OpenAI-compatible server, used like a loaded model (``info``, streams).

    Create with :meth:`connect`, which checks the server is there and serves the model. Share one
    instance per server in a process: it holds the energy meter that attributes overlapping requests.
    """

    cfg: ServerConfig
    info: ModelInfo
    served: list[str] = field(default_factory=list)
    backend: str = "server"
    needs_lock: bool = False
    _meters: dict = field(default_factory=dict, repr=False)
    _meter_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: ``llama.cpp`` when the server is llama.cpp's (its sampling defaults are then overridden), else ""
    engine: str = ""

    @classmethod
    def connect(cls, cfg: ServerConfig) -> "ServerModel":
        """Check the server and its model (ServerError with what to do) and describe it."""
        entries, took = list_models(cfg)
        served = [str(e["id"]) for e in entries]
        name = cfg.model
        if served:
            if name is None:
                name = served[0]
            elif name not in served:
                raise ServerError(f"The server at {cfg.base_url} has no model named {name!r}. It serves: "
                                  f"{', '.join(served)}. Pick one of these (--server-model, {ENV_MODEL} or the Home page).")
        elif name is None:
            raise ServerError(f"The server at {cfg.base_url} does not list its models: give the model name "
                              f"(--server-model, {ENV_MODEL} or the Home page).")
        entry = next((e for e in entries if e.get("id") == name), {})
        ctx = cfg.context_len or _context_from(entry) or DEFAULT_CONTEXT
        dcfg = config_for_model(name)
        info = ModelInfo(name=name, kind="server", path=cfg.base_url, device=f"server:{cfg.address}", dtype="server-side",
                         threads=0, load_s=took, converted=False, context_len=int(ctx), params_m=None,
                         placement=dcfg.placement, directive_set=dcfg.directive_set, gpu_name=None)
        # llama-cpp-python's server lists its models as owned by "me", llama.cpp's own llama-server by "llamacpp"
        engine = "llama.cpp" if str(entry.get("owned_by", "")).lower() in ("me", "llamacpp") else ""
        return cls(replace(cfg, model=name), info, served, engine=engine)

    def open_stream(self, prompt: str, directive: Directive, params: GenerationParams,
                    placement: Placement | None = None) -> "ServerStream":
        return ServerStream(self, prompt, directive, params, placement)

    def energy_meter(self, **options: Any):
        """The shared, token-attributing meter of this server (one per option set; see :mod:`.energy`)."""
        from sprout_core.serving.energy import server_meter

        options = {k: v for k, v in options.items() if v is not None and not (k == "cpu_model" and v == "generic")}
        key = tuple(sorted((k, repr(v)) for k, v in options.items()))
        with self._meter_lock:
            m = self._meters.get(key)
            if m is None or not _source_alive(m):  # a restarted server is a new process: meter it anew
                m = self._meters[key] = server_meter(self.cfg, **options)
            return m


def _source_alive(meter) -> bool:
    """False when a meter reads the CPU time of a server process that has exited."""
    clock = getattr(getattr(meter, "inner", None), "_cpu_time", None)
    return bool(getattr(clock, "alive", True))


class ServerStream(ChatStream):
    """One answer streamed from the server; iterate for chunks, then read :attr:`result`."""

    backend_name = "server"

    @property
    def server(self) -> ServerModel:
        return self.lm

    @property
    def prompt_tokens(self) -> int | None:
        """The server counts the prompt's tokens (its chat template): known after the answer if it reports usage."""
        return self.result.prompt_tokens if self.result is not None else None

    def request_body(self) -> dict[str, Any]:
        """The JSON body posted to ``/chat/completions``."""
        p = self.params
        body: dict[str, Any] = {"model": self.server.info.name, "messages": self.messages, "stream": True,
                                "max_tokens": int(min(p.max_new_tokens, self.server.info.context_len)),
                                "stream_options": {"include_usage": True}}
        if p.do_sample:
            body.update(temperature=p.temperature, top_p=p.top_p)
            if p.seed is not None:
                body["seed"] = int(p.seed)
        else:
            body.update(temperature=0.0, top_p=1.0, seed=0)
        if self.server.engine == "llama.cpp":  # its own defaults (repeat penalty 1.1 …) would change the answers
            body.update(llama_cpp_sampling(p))
        return body

    def __iter__(self) -> Iterator[StreamChunk]:
        srv, cfg, p = self.server, self.server.cfg, self.params
        res = self.new_result(int(min(p.max_new_tokens, srv.info.context_len)), None, srv.info.device)
        res.extra["server"] = cfg.base_url
        q: queue.Queue = queue.Queue()
        cancel = threading.Event()
        holder: dict[str, Any] = {}
        body = json.dumps(self.request_body()).encode("utf-8")
        on_tokens = self.on_tokens
        cap = token_cap(res.max_new_tokens)
        cap_chars = cap * MAX_CHARS_PER_TOKEN
        seen = {"bytes": 0}

        def read() -> None:
            """Reader thread: post, parse events, put (kind, …) items on the queue; always ends with 'end'."""
            conn = _connection(cfg, cfg.timeout_s)
            holder["conn"] = conn
            count = chars = 0
            try:
                try:
                    conn.request("POST", _path(cfg, "/chat/completions"), body=body, headers=_headers(cfg, stream=True))
                    resp = conn.getresponse()
                except (TimeoutError, socket.timeout) as exc:  # connected but no reply: a stall, not "cannot reach"
                    q.put(("unreachable", exc) if conn.sock is None else ("timeout",))
                    return
                except (OSError, http.client.HTTPException) as exc:
                    q.put(("unreachable", exc))
                    return
                if resp.status != 200:
                    q.put(("http", resp.status, resp.read(MAX_BODY_BYTES)))
                    return
                parser = SSEParser()
                while not cancel.is_set():
                    data = resp.read1(65536)
                    if not data:
                        q.put(("eof", parser.pending))
                        return
                    try:
                        events = parser.feed(data)
                    except EventTooLarge as exc:
                        q.put(("malformed", str(exc)))
                        return
                    for ev in events:
                        if ev.event == "error":
                            q.put(("error", _server_message(ev.data.encode())))
                            return
                        try:
                            d = parse_chunk(ev.data)
                        except ChunkFormatError as exc:
                            q.put(("malformed", str(exc)))
                            return
                        if d.error:
                            q.put(("error", d.error))
                            return
                        if d.text:
                            count += 1
                            chars += len(d.text)
                            seen["bytes"] += len(d.text.encode("utf-8", "surrogatepass"))
                            if on_tokens is not None:
                                on_tokens(count)
                            q.put(("text", d.text, count, time.perf_counter()))
                            if count > cap or chars > cap_chars:  # the server ignores max_tokens: stop reading
                                q.put(("capped", count))
                                return
                        if d.prompt_tokens is not None or d.completion_tokens is not None:
                            q.put(("usage", d.prompt_tokens, d.completion_tokens))
                        if d.finish_reason:
                            q.put(("finish", d.finish_reason))
                        if d.done:
                            q.put(("done",))
                            return
            except (TimeoutError, socket.timeout):
                q.put(("timeout",))
            except (OSError, http.client.HTTPException) as exc:
                q.put(("cut", exc) if not cancel.is_set() else ("cancelled",))
            finally:
                q.put(("end",))
                conn.close()

        res.started_at = time.time()
        t0 = time.perf_counter()
        worker = threading.Thread(target=read, name="sprout-server-stream", daemon=True)
        worker.start()
        pieces: list[str] = []
        n_chunks = 0
        finish: str | None = None
        done = False
        usage: tuple[int | None, int | None] = (None, None)
        problem: str | None = None
        what: str | None = None  # the kind of problem in one word: refused, stalled, cut, malformed, too-slow
        closed_early = True
        last_token = t0
        try:
            while True:
                try:
                    item = q.get(timeout=HEARTBEAT_S)
                except queue.Empty:  # queued at the server or reading the prompt: let the caller update its display
                    item = None
                now = time.perf_counter()
                if now - t0 > cfg.total_timeout_s:  # whatever the server does, an answer ends
                    what, problem = "too-slow", (
                        f"Too slow: the answer took more than {cfg.total_timeout_s:g} s in total (after {n_chunks} "
                        "tokens); Sprout stopped reading and closed the connection.")
                    closed_early = False
                    break
                if item is None:
                    if now - last_token > cfg.timeout_s:  # keep-alive comments alone do not count as progress
                        what, problem = "stalled", stalled_message(cfg, n_chunks)
                        closed_early = False
                        break
                    yield StreamChunk("", n_chunks, time.perf_counter() - t0)
                    continue
                kind = item[0]
                if kind == "text":
                    _, text, n_chunks, t = item
                    last_token = time.perf_counter()
                    if res.ttft_s is None:
                        res.ttft_s = t - t0
                    pieces.append(text)
                    yield StreamChunk(text, n_chunks, time.perf_counter() - t0)
                elif kind == "usage":
                    usage = (item[1] if item[1] is not None else usage[0], item[2] if item[2] is not None else usage[1])
                elif kind == "finish":
                    finish = item[1]
                elif kind == "done":
                    done = True
                    if finish is None:  # [DONE] without a finish reason: the server dropped this answer
                        what = "cut"
                        problem = (f"Cut: the server ended the stream after {n_chunks} tokens without finishing the answer "
                                   "(no finish reason) — it may have interrupted it for another request (llama-cpp-"
                                   "python's server does unless started with --interrupt_requests False).")
                elif kind == "unreachable":
                    what, problem = "refused", unreachable_message(cfg, item[1])
                elif kind == "http":
                    what, problem = "refused", http_error_message(cfg, item[1], item[2], srv.info.name, srv.served)
                elif kind == "error":
                    what, problem = "error", f"The server reported an error mid-answer: {item[1]}"
                elif kind == "malformed":
                    what, problem = "malformed", (
                        f"Malformed: after {n_chunks} tokens the server sent something that is not a chat-completion "
                        f"chunk ({item[1]}); Sprout stopped reading. Is this an OpenAI-compatible server?")
                elif kind == "capped":
                    what, problem = "cut", (
                        f"Cut by Sprout: the server kept streaming past the {res.max_new_tokens} tokens asked for "
                        f"(it ignores max_tokens); Sprout stopped reading after {item[1]} tokens and closed the "
                        "connection.")
                elif kind == "timeout":
                    what, problem = "stalled", stalled_message(cfg, n_chunks)
                elif kind == "cut":
                    exc = item[1]
                    what, problem = "cut", (f"Cut: the connection to the server broke mid-answer after {n_chunks} "
                                            f"tokens ({type(exc).__name__}: {exc}) — did the server stop?")
                elif kind == "eof":
                    if finish is None and not done:
                        what, problem = "cut", (
                            f"Cut: the server closed the stream mid-answer after {n_chunks} tokens, without saying "
                            "the answer was finished — did the server stop or crash?")
                elif kind == "end":
                    closed_early = False
                    break
        finally:
            cancel.set()
            conn = holder.get("conn")
            sock = getattr(conn, "sock", None)
            if worker.is_alive() and sock is not None:
                try:  # unblock the reader and tell the server the client is gone (it stops generating)
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            worker.join(timeout=5.0)
            # also when the consumer stopped early: the record then holds the partial answer, 'aborted'
            res.total_s = time.perf_counter() - t0
            res.text = "".join(pieces).strip()
            ctx_known = cfg.context_len or (srv.info.context_len if srv.info.context_len != DEFAULT_CONTEXT else None)
            checked = checked_usage(usage[0], usage[1], streamed_chunks=n_chunks, streamed_bytes=seen["bytes"],
                                    request_bytes=len(body), context_len=ctx_known)
            res.prompt_tokens = checked.prompt_tokens
            res.new_tokens = int(checked.completion_tokens) if checked.completion_tokens is not None else n_chunks
            res.extra["token_count"] = ("server usage" if checked.completion_tokens is not None else
                                        "streamed chunks" + (" (the server's count was implausible)"
                                                             if usage[1] is not None else ""))
            if checked.notes:
                res.extra["usage_notes"] = list(checked.notes)
            if what:
                res.extra["server_problem"] = what
            if closed_early:
                res.finish_reason, res.partial = ABORTED, bool(pieces)
            elif problem is not None:
                res.finish_reason = "error"
                if pieces:
                    res.partial = True
                    problem += f" The partial answer ({n_chunks} tokens) is kept."
                res.error = problem
            else:
                res.finish_reason = (finish_reason(finish) if finish else
                                     ("length" if res.new_tokens >= res.max_new_tokens else "eos"))
            if res.total_s > 0 and res.new_tokens:
                res.tokens_per_s = res.new_tokens / res.total_s
            self.result = res
