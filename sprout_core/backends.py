"""Which generation backend answers: in-process transformers (default), in-process llama.cpp, or a server.

=================  ======================================  ===========================  =====================
backend            what                                     concurrency                  energy
=================  ======================================  ===========================  =====================
``transformers``   :class:`~sprout_core.models.LoadedModel`   one answer at a time (lock)  this process's device
``llama.cpp``      :class:`~sprout_core.serving.llamacpp.LlamaCppModel` (embedded GGUF)  lock  this process's CPU
``server``         :class:`~sprout_core.serving.client.ServerModel` (OpenAI-compatible)  the server schedules  the server's device, split by tokens
=================  ======================================  ===========================  =====================

All three are used the same way by :mod:`sprout_core.generation`, :mod:`sprout_core.metered`, the
evaluator and the pages. Chosen on the Home page, by ``--backend``/``--server-url`` in the CLI, or by
the environment: ``SPROUT_BACKEND`` (``transformers``, ``llama.cpp`` or ``server``) and the
``SPROUT_SERVER_*`` variables of :class:`~sprout_core.serving.client.ServerConfig`.

**Default** (:func:`default_choice`, its ``why`` says which rule chose it): ``SPROUT_BACKEND`` when set; else
``server`` when ``SPROUT_SERVER_URL`` is set; else, for the embedded model, ``SPROUT_EMBEDDED_BACKEND``
(``llama.cpp`` or ``transformers``) when set, else **llama.cpp when it is installed** (about 5× the tokens/s
of transformers on a CPU, the same prompt and decoding: ``benchmarks/bench_generation.py``) and
**transformers** when it is not (it needs no compiler; the app says so); a local model folder
(``SPROUT_MODEL``) always runs on transformers.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from typing import Any

from sprout_core.energy import EnergyMeter, detect_meter
from sprout_core.errors import InputError
from sprout_core.models import EMBEDDED_SPEC, load_model
from sprout_core.serving.client import ENV_KEY, ServerConfig, ServerModel, parse_indices
from sprout_core.serving.llamacpp import INSTALL_HINT, LlamaCppModel, llama_cpp_available
from sprout_core.settings import Settings

BACKENDS = ("transformers", "llama.cpp", "server")
ENV_BACKEND = "SPROUT_BACKEND"
#: which in-process backend runs the embedded model when nothing else is asked for (default: llama.cpp if installed)
ENV_EMBEDDED_BACKEND = "SPROUT_EMBEDDED_BACKEND"


@dataclass(frozen=True)
class BackendChoice:
    """A backend and what it needs: the model spec (transformers), or the server's configuration."""

    kind: str = "transformers"
    model: str = EMBEDDED_SPEC
    device: str | None = None
    dtype: str | None = None
    threads: int | None = None
    server: ServerConfig | None = None
    #: why this backend (for a default: the rule that chose it), shown on Home; not part of the choice itself
    why: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.kind not in BACKENDS:
            raise InputError(f"Unknown backend {self.kind!r}: choose one of {', '.join(BACKENDS)}")
        if self.kind == "server" and self.server is None:
            raise InputError("The server backend needs a server URL (--server-url, SPROUT_SERVER_URL or the Home page)")
        if self.kind == "llama.cpp" and self.model != EMBEDDED_SPEC:
            raise InputError("The llama.cpp backend runs the embedded model only; use a server (e.g. llama.cpp's or "
                             "vLLM's) for other models")

    def label(self) -> str:
        if self.kind == "server" and self.server is not None:
            return f"server {self.server.base_url}"
        if self.kind == "llama.cpp":
            return "llama.cpp (in process, embedded model)"
        return f"transformers ({self.model})"


def default_choice(environ: dict[str, str] | None = None) -> BackendChoice:
    """The backend the environment asks for, with the reason (see the module docstring)."""
    env = os.environ if environ is None else environ
    server = ServerConfig.from_env(env)
    s = Settings.from_env(env)
    model = s.model or EMBEDDED_SPEC
    asked = s.backend or ""
    if asked:
        kind, why = asked, f"{ENV_BACKEND}={asked}"
    elif server:
        kind, why = "server", "SPROUT_SERVER_URL is set"
    elif model != EMBEDDED_SPEC:
        kind, why = "transformers", "a local model folder (SPROUT_MODEL) runs on transformers"
    else:
        kind, why = embedded_default()
    return BackendChoice(kind, model if kind == "transformers" else EMBEDDED_SPEC,
                         server=server if kind == "server" else None, why=why)


def embedded_default(environ: dict[str, str] | None = None) -> tuple[str, str]:
    """The in-process backend for the embedded model and why: ``SPROUT_EMBEDDED_BACKEND`` if set, else llama.cpp
    when it is installed (the fast path), else transformers (the fallback, which needs no compiler)."""
    env = os.environ if environ is None else environ
    asked = Settings.from_env(env).embedded_backend or ""
    if asked:
        if asked not in ("llama.cpp", "transformers"):
            raise InputError(f"{ENV_EMBEDDED_BACKEND} is llama.cpp or transformers, not {asked!r}")
        return asked, f"{ENV_EMBEDDED_BACKEND}={asked}"
    if llama_cpp_available():
        return "llama.cpp", "the default: llama.cpp is installed (about 5× the tokens/s of transformers on a CPU)"
    return "transformers", ("the fallback: llama.cpp is not installed (`bash scripts/setup.sh` builds it; it needs a "
                            "C/C++ compiler and cmake), so the embedded model runs on transformers, about 5× slower")


def open_backend(choice: BackendChoice):
    """Load or connect the chosen backend (ModelError / ServerError / InputError with what to do)."""
    if choice.kind == "server":
        assert choice.server is not None
        return ServerModel.connect(choice.server)
    if choice.kind == "llama.cpp":
        return LlamaCppModel.load_embedded(threads=choice.threads)
    return load_model(choice.model, device=choice.device, dtype=choice.dtype, threads=choice.threads)


def meter_for(lm: Any, **options: Any) -> EnergyMeter:
    """The energy meter for a backend: a server's shared, token-attributing meter, else the device's meter.

    ``options`` as for :func:`sprout_core.energy.detect_meter` (``prefer``, ``cpu_model``, ``per_core_w`` …).
    """
    if isinstance(lm, ServerModel):
        keep = ("prefer", "cpu_model", "per_core_w", "tdp_w", "cores", "allow_estimate", "nvml_module", "powercap_root")
        return lm.energy_meter(**{k: v for k, v in options.items() if k in keep and v is not None})
    return detect_meter(lm.info.device, **options)


# --------------------------------------------------------------------------- CLI
def add_backend_args(p: argparse.ArgumentParser) -> None:
    """The ``--backend`` / ``--server-*`` options shared by the commands that generate."""
    g = p.add_argument_group("backend (default: $SPROUT_BACKEND, or server when --server-url/$SPROUT_SERVER_URL is set)")
    g.add_argument("--backend", choices=BACKENDS, default=None,
                   help="transformers (in process, default), llama.cpp (in process, embedded model, fast on CPU) or "
                        "server (an OpenAI-compatible serving engine)")
    g.add_argument("--server-url", default=None, help="base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--server-model", default=None, help="the served model's name (default: the one the server lists)")
    g.add_argument("--server-timeout", type=float, default=None, help="seconds without data before giving up (default 120)")
    g.add_argument("--server-gpus", default=None, help="NVML indices of the GPUs the server uses, e.g. 0,1 (default: found "
                                                        "from its process)")
    g.add_argument("--server-pid", type=int, default=None, help="the server's process id (default: the process on its port)")
    g.add_argument("--server-api-key-env", default=None,
                   help=f"environment variable holding the API key (default {ENV_KEY}; the key is never printed)")


def choice_from_args(args: argparse.Namespace) -> BackendChoice:
    """The backend the command line asks for, over the environment's defaults."""
    env = default_choice()
    base = env.server
    url = getattr(args, "server_url", None)
    kind = getattr(args, "backend", None) or ("server" if url else env.kind)
    server = None
    if kind == "server":
        if not (url or base):
            raise InputError("--backend server needs --server-url (or SPROUT_SERVER_URL)")
        server = ServerConfig(
            url or base.base_url,
            args.server_model if args.server_model is not None else (base.model if base and not url else None),
            args.server_api_key_env or (base.api_key_env if base else ENV_KEY),
            args.server_timeout if args.server_timeout is not None else (base.timeout_s if base else 120.0),
            parse_indices(args.server_gpus) if args.server_gpus else (base.gpu_indices if base else None),
            args.server_pid if args.server_pid is not None else (base.pid if base else None),
            base.energy if base else "auto",
            base.context_len if base else None,
        )
    model = getattr(args, "model", None) or (env.model if env.kind == "transformers" else EMBEDDED_SPEC)
    if not getattr(args, "backend", None) and kind == "llama.cpp" and (
            model != EMBEDDED_SPEC or getattr(args, "device", None) not in (None, "", "auto", "cpu")
            or getattr(args, "dtype", None) not in (None, "", "auto", "float32", "fp32")):
        kind = "transformers"  # llama.cpp was only the default: a folder, a GPU or a dtype asks for transformers
    if kind == "llama.cpp" and not llama_cpp_available():
        raise InputError(INSTALL_HINT)
    why = (f"--backend {kind}" if getattr(args, "backend", None) else "--server-url" if url
           else env.why if kind == env.kind else "a model folder, device or dtype was given")
    return BackendChoice(kind, model if kind != "server" else EMBEDDED_SPEC, getattr(args, "device", None),
                         getattr(args, "dtype", None), getattr(args, "threads", None), server, why=why)
