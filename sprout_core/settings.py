"""Every ``SPROUT_*`` environment variable in one place: :class:`Settings` (``Settings.from_env()``).

One typed property per variable, each parsed here with its rule; modules read ``Settings.from_env().name``
instead of ``os.environ``. A snapshot is cheap (a copy of the environment) and is taken at each read, so
a changed variable (a test's ``monkeypatch.setenv``) counts at once. A value is parsed when it is read: a
bad ``SPROUT_TORCH_THREADS`` is refused (with the variable's name) by the code that needs it, not by every
other reader.

:data:`VARIABLES` lists them all (name, type, default, meaning); ``docs/app.md`` shows that table and
``tests/test_settings.py`` checks the two agree and that no other module reads a ``SPROUT_*`` variable
from ``os.environ`` directly. Secrets (API keys) are *not* settings: they are read by name at the moment
of use and never kept (``SPROUT_SERVER_API_KEY``, ``SPROUT_JUDGE_API_KEY``). The ``SPROUT_SERVER_*``
variables of an OpenAI-compatible server are parsed by
:meth:`sprout_core.serving.config.ServerConfig.from_env` (they are listed here too).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sprout_core import validate

#: what counts as "on" for a yes/no variable
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class Variable:
    """One ``SPROUT_*`` variable: its name, type, default and meaning (the docs table's row)."""

    name: str
    type: str
    default: str
    meaning: str
    reader: str = "Settings"


#: every SPROUT_* variable the project reads (in the order of docs/app.md's table)
VARIABLES: tuple[Variable, ...] = (
    Variable("SPROUT_ZONE", "text", "US-TEX-ERCO", "grid zone used wherever none is chosen (`defaults.default_zone`)"),
    Variable("SPROUT_MODEL", "model spec", "the embedded SmolLM2-135M", "model loaded when none is chosen"),
    Variable("SPROUT_BACKEND", "transformers · llama.cpp · server", "server if SPROUT_SERVER_URL is set, else transformers",
             "generation backend"),
    Variable("SPROUT_EMBEDDED_BACKEND", "llama.cpp · transformers", "llama.cpp when installed, else transformers",
             "in-process backend of the embedded model"),
    Variable("SPROUT_TORCH_THREADS", "whole number 1–1024", "1 on ≤ 2 cores, else cores up to 8", "torch intra-op threads"),
    Variable("SPROUT_DATA_DIR", "folder", "data/external", "the optional public data (texts, raw traces)"),
    Variable("SPROUT_STATE_DIR", "folder", ".sprout", "runtime state: the database, your grid traces, classifier"),
    Variable("SPROUT_CACHE_DIR", "folder", "$XDG_CACHE_HOME/sprout or ~/.cache/sprout", "model caches"),
    Variable("SPROUT_DB_LOCK_WAIT_S", "seconds ≥ 0", "60", "how long a write waits for a locked database before the "
             "answer goes to the pending queue (a bad value: the default)"),
    Variable("SPROUT_SHARED", "yes/no (1, true, yes, on)", "no", "class mode: operator's model list, no process-wide settings"),
    Variable("SPROUT_ALLOW_PICKLE", "yes/no", "no", "allow PyTorch pickle weights (safetensors only otherwise)"),
    Variable("SPROUT_MODELS", "folders, separated by the OS path separator", "none", "model folders offered in class mode"),
    Variable("SPROUT_MODEL_ROOT", "folder", "none", "every model folder under it is offered in class mode"),
    Variable("SPROUT_JUDGE_MODEL", "text", "none", "model name of an `api:` judge given without one"),
    Variable("SPROUT_JUDGE_BASE_URL", "URL", "none", "base URL of an OpenAI-compatible judge"),
    Variable("SPROUT_DEBUG", "any non-empty value", "off", "the CLI prints tracebacks and the `sprout` logger"),
    Variable("SPROUT_GATEWAY_POOLS", "whole number", "8", "the gateway's upstream connection pools"),
    Variable("SPROUT_CLASS_MAX_PROMPT_CHARS", "whole number ≥ 0", "4000", "class mode: the longest prompt, characters",
             "ClassCaps.from_env (run.py)"),
    Variable("SPROUT_CLASS_MAX_RUN_TOKENS", "whole number ≥ 0", "768", "class mode: new tokens per run",
             "ClassCaps.from_env (run.py)"),
    Variable("SPROUT_CLASS_MAX_HOUR_TOKENS", "whole number ≥ 0", "6000", "class mode: new tokens per visitor per hour",
             "ClassCaps.from_env (run.py)"),
    Variable("SPROUT_SERVER_URL", "URL", "none", "an OpenAI-compatible server to generate with", "ServerConfig.from_env"),
    Variable("SPROUT_SERVER_MODEL", "text", "the first model the server lists", "the served model", "ServerConfig.from_env"),
    Variable("SPROUT_SERVER_API_KEY_ENV", "variable name", "SPROUT_SERVER_API_KEY", "which variable holds the server's key",
             "ServerConfig.from_env"),
    Variable("SPROUT_SERVER_TIMEOUT", "seconds", "120", "connection / first byte / next byte timeout", "ServerConfig.from_env"),
    Variable("SPROUT_SERVER_GPUS", "NVML indices, e.g. 0,1", "found from the server's process", "GPUs the server uses",
             "ServerConfig.from_env"),
    Variable("SPROUT_SERVER_PID", "process id", "found from the port", "the server's process on this machine",
             "ServerConfig.from_env"),
    Variable("SPROUT_SERVER_ENERGY", "auto · none", "auto", "meter a local server (auto) or not", "ServerConfig.from_env"),
    Variable("SPROUT_SERVER_CONTEXT", "tokens", "as the server says, else 4,096", "the model's context length",
             "ServerConfig.from_env"),
    Variable("SPROUT_SERVER_API_KEY", "secret", "none", "the server's API key: read at each request, never kept or shown",
             "secret (read at use)"),
    Variable("SPROUT_JUDGE_API_KEY", "secret", "none", "an API judge's key: read at each request, never kept or shown",
             "secret (read at use)"),
    Variable("SPROUT_REQUIRE_LLAMA_CPP", "yes/no", "no", "tests: fail instead of skipping without the llama.cpp server",
             "tests"),
    Variable("SPROUT_VENV", "folder", ".venv", "scripts: the virtual environment to create and use", "scripts"),
    Variable("SPROUT_TORCH_SPEC", "pip requirement", "torch==2.13.0", "setup: the torch to install without an NVIDIA GPU",
             "scripts/setup.sh"),
    Variable("SPROUT_SHARED_DATA", "folder", "../shared/data", "setup: the public data to link as data/external",
             "scripts/setup.sh"),
)


@dataclass(frozen=True)
class Settings:
    """A snapshot of the ``SPROUT_*`` environment with one typed property per variable (see :data:`VARIABLES`)."""

    environ: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """The settings of ``environ`` (default: this process's environment, read now)."""
        env = os.environ if environ is None else environ
        return cls({k: v for k, v in env.items() if k.startswith("SPROUT_") or k == "XDG_CACHE_HOME"})

    # ---- raw access (for the few callers that pass an environment on, e.g. ServerConfig.from_env)
    def text(self, name: str) -> str | None:
        """The variable stripped, ``None`` when unset or blank."""
        v = (self.environ.get(name) or "").strip()
        return v or None

    def flag(self, name: str) -> bool:
        return (self.environ.get(name) or "").strip().lower() in TRUE_WORDS

    def _folder(self, name: str) -> Path | None:
        v = self.environ.get(name)
        return Path(v).expanduser() if v else None

    # ---- one property per variable
    @property
    def zone(self) -> str | None:
        """``SPROUT_ZONE``: the default grid zone, ``None`` = the project's (US-TEX-ERCO)."""
        return self.text("SPROUT_ZONE")

    @property
    def model(self) -> str | None:
        """``SPROUT_MODEL``: the default model spec, ``None`` = the embedded model."""
        return self.text("SPROUT_MODEL")

    @property
    def backend(self) -> str | None:
        """``SPROUT_BACKEND`` in lower case, ``None`` when unset (then the server's URL decides)."""
        v = self.text("SPROUT_BACKEND")
        return v.lower() if v else None

    @property
    def embedded_backend(self) -> str | None:
        """``SPROUT_EMBEDDED_BACKEND`` in lower case, ``None`` when unset (then llama.cpp if installed)."""
        v = self.text("SPROUT_EMBEDDED_BACKEND")
        return v.lower() if v else None

    @property
    def torch_threads(self) -> int | None:
        """``SPROUT_TORCH_THREADS`` (a whole number 1 … validate.MAX_THREADS; InputError naming the variable
        otherwise), ``None`` when unset."""
        v = self.environ.get("SPROUT_TORCH_THREADS")
        return validate.whole("SPROUT_TORCH_THREADS", v, 1, validate.MAX_THREADS) if v else None

    @property
    def data_dir(self) -> Path | None:
        """``SPROUT_DATA_DIR``: the public data folder, ``None`` = ``data/external``."""
        return self._folder("SPROUT_DATA_DIR")

    @property
    def state_dir(self) -> Path | None:
        """``SPROUT_STATE_DIR``: the runtime state folder, ``None`` = ``.sprout``."""
        return self._folder("SPROUT_STATE_DIR")

    @property
    def cache_dir(self) -> Path | None:
        """``SPROUT_CACHE_DIR``, else ``$XDG_CACHE_HOME/sprout``; ``None`` = ``~/.cache/sprout``."""
        own = self._folder("SPROUT_CACHE_DIR")
        if own is not None:
            return own
        xdg = self.environ.get("XDG_CACHE_HOME")
        return Path(xdg) / "sprout" if xdg else None

    @property
    def db_lock_wait_s(self) -> float | None:
        """``SPROUT_DB_LOCK_WAIT_S`` in s (negative → 0), ``None`` when unset or not a number."""
        v = self.environ.get("SPROUT_DB_LOCK_WAIT_S")
        if not v:
            return None
        try:
            return max(0.0, float(v))
        except ValueError:
            return None

    @property
    def shared(self) -> bool:
        """``SPROUT_SHARED``: class mode asked for."""
        return self.flag("SPROUT_SHARED")

    @property
    def allow_pickle(self) -> bool:
        """``SPROUT_ALLOW_PICKLE``: PyTorch pickle weights allowed."""
        return self.flag("SPROUT_ALLOW_PICKLE")

    @property
    def models(self) -> tuple[Path, ...]:
        """``SPROUT_MODELS``: model folders (split on ``os.pathsep``)."""
        return tuple(Path(p.strip()).expanduser() for p in (self.environ.get("SPROUT_MODELS") or "").split(os.pathsep)
                     if p.strip())

    @property
    def model_root(self) -> Path | None:
        """``SPROUT_MODEL_ROOT``: a folder whose model folders are offered."""
        v = self.text("SPROUT_MODEL_ROOT")
        return Path(v).expanduser() if v else None

    @property
    def judge_model(self) -> str:
        """``SPROUT_JUDGE_MODEL`` ("" when unset)."""
        return self.environ.get("SPROUT_JUDGE_MODEL", "")

    @property
    def judge_base_url(self) -> str:
        """``SPROUT_JUDGE_BASE_URL`` ("" when unset)."""
        return self.environ.get("SPROUT_JUDGE_BASE_URL", "")

    @property
    def gateway_pools(self) -> int:
        """``SPROUT_GATEWAY_POOLS``: the gateway's upstream connection pools (default 8; not a number: ValueError)."""
        return int(self.environ.get("SPROUT_GATEWAY_POOLS", "8") or 8)

    @property
    def debug(self) -> bool:
        """``SPROUT_DEBUG``: any non-empty value."""
        return bool(self.environ.get("SPROUT_DEBUG"))
