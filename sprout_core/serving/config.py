"""Where an OpenAI-compatible server is and how to meter it: :class:`ServerConfig` (from arguments or the
``SPROUT_SERVER_*`` environment variables) and :func:`is_local_host`.

Its own module so that :mod:`sprout_core.serving.client` (which streams from the server) and
:mod:`sprout_core.serving.energy` (which meters it) both import it and neither imports the other.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import socket
import urllib.parse
from dataclasses import dataclass

from sprout_core.errors import InputError

_log = logging.getLogger("sprout.serving.config")

#: environment variables of the server backend
ENV_URL = "SPROUT_SERVER_URL"
ENV_MODEL = "SPROUT_SERVER_MODEL"
ENV_KEY = "SPROUT_SERVER_API_KEY"
ENV_KEY_NAME = "SPROUT_SERVER_API_KEY_ENV"
ENV_TIMEOUT = "SPROUT_SERVER_TIMEOUT"
ENV_GPUS = "SPROUT_SERVER_GPUS"
ENV_PID = "SPROUT_SERVER_PID"
ENV_ENERGY = "SPROUT_SERVER_ENERGY"
ENV_CONTEXT = "SPROUT_SERVER_CONTEXT"

#: seconds an answer may take in total before the client stops reading (ServerConfig.total_timeout_s)
DEFAULT_TOTAL_TIMEOUT_S = 900.0

#: energy modes: auto (measure if the server runs here, n/a if remote), none (switched off)
ENERGY_MODES = ("auto", "none")


def parse_indices(text: str | None) -> tuple[int, ...] | None:
    """``"0,1"`` → ``(0, 1)``; empty → ``None``; InputError for anything else."""
    if text is None or not str(text).strip():
        return None
    try:
        out = tuple(int(x) for x in str(text).replace(" ", "").split(",") if x != "")
    except ValueError as exc:
        raise InputError(f"GPU indices look like 0 or 0,1 (NVML indices, comma-separated), not {text!r}") from exc
    if any(i < 0 for i in out) or len(set(out)) != len(out):
        raise InputError(f"GPU indices must be distinct whole numbers ≥ 0, not {text!r}")
    return out or None


def normalize_base_url(url: str) -> str:
    """``http(s)://host[:port]/path`` with ``/v1`` added when no path is given (InputError if unusable).

    A URL with a user name or password is refused: keys belong in the environment, not in a URL that
    would be shown and stored.
    """
    raw = (url or "").strip()
    if not raw:
        raise InputError("No server URL given: type the base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    if "://" not in raw:
        raw = "http://" + raw
    p = urllib.parse.urlsplit(raw)
    if p.scheme not in ("http", "https"):
        raise InputError(f"The server URL must start with http:// or https://, not {p.scheme}://")
    if p.username or p.password:
        raise InputError("Do not put credentials in the server URL: set the API key in the environment variable "
                         f"{ENV_KEY} instead (it is read from there and never stored or shown).")
    if not p.hostname:
        raise InputError(f"The server URL {url!r} has no host name")
    try:
        port = p.port
    except ValueError as exc:
        raise InputError(f"The server URL {url!r} has an invalid port") from exc
    path = p.path.rstrip("/")
    for tail in ("/chat/completions", "/completions", "/models"):
        if path.endswith(tail):
            path = path[: -len(tail)]
    if not path:
        path = "/v1"
    host = f"[{p.hostname}]" if ":" in p.hostname else p.hostname
    return f"{p.scheme}://{host}{':' + str(port) if port else ''}{path}"


@dataclass(frozen=True)
class ServerConfig:
    """Where the server is and how to meter it.

    Attributes:
        base_url: e.g. ``http://127.0.0.1:8000/v1`` (normalised by :func:`normalize_base_url`).
        model: the served model's name; ``None`` picks the one the server lists (the first of several).
        api_key_env: name of the environment variable holding the API key (the key itself is never kept).
        timeout_s: seconds to wait for the connection, the first token, or the next token mid-answer (the idle
            timeout: keep-alive comments do not reset it).
        gpu_indices: NVML indices of the GPUs the server uses (``None``: found from its process, if here).
        pid: the server's process id on this machine (``None``: found from its port).
        energy: ``auto`` (measure a server on this machine, n/a for a remote one) or ``none``.
        context_len: tokens the model reads (``None``: as the server says, else 4,096).
        total_timeout_s: seconds one answer may take in total; the client then stops reading and closes.
    """

    base_url: str
    model: str | None = None
    api_key_env: str = ENV_KEY
    timeout_s: float = 120.0
    gpu_indices: tuple[int, ...] | None = None
    pid: int | None = None
    energy: str = "auto"
    context_len: int | None = None
    total_timeout_s: float = DEFAULT_TOTAL_TIMEOUT_S

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", normalize_base_url(self.base_url))
        object.__setattr__(self, "model", (self.model or "").strip() or None)
        if not (0 < float(self.timeout_s) <= 3600):
            raise InputError(f"The server timeout must be between 0 and 3600 s, not {self.timeout_s}")
        if not (0 < float(self.total_timeout_s) <= 86400):
            raise InputError(f"The server's total timeout must be between 0 and 86400 s, not {self.total_timeout_s}")
        if self.energy not in ENERGY_MODES:
            raise InputError(f"Server energy mode must be one of {', '.join(ENERGY_MODES)}, not {self.energy!r}")
        if self.pid is not None and int(self.pid) <= 0:
            raise InputError(f"A server PID is a positive whole number, not {self.pid}")
        if self.api_key_env and not self.api_key_env.replace("_", "").isalnum():
            raise InputError(f"{self.api_key_env!r} is not an environment variable name")

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.base_url).hostname or ""

    @property
    def port(self) -> int:
        p = urllib.parse.urlsplit(self.base_url)
        return p.port or (443 if p.scheme == "https" else 80)

    @property
    def address(self) -> str:
        """``host:port`` for display."""
        return f"{self.host}:{self.port}"

    def api_key(self) -> str | None:
        """The key from the environment, read now (never stored)."""
        return os.environ.get(self.api_key_env or ENV_KEY) or None

    @staticmethod
    def key_is_set(api_key_env: str | None) -> bool:
        """Whether the environment variable holds a key (for the UI: it says set / not set, never the key)."""
        return bool(os.environ.get(api_key_env or ENV_KEY))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "ServerConfig | None":
        """The server configured by ``SPROUT_SERVER_*`` variables, or ``None`` when no URL is set."""
        env = os.environ if environ is None else environ
        url = (env.get(ENV_URL) or "").strip()
        if not url:
            return None
        try:
            timeout = float(env.get(ENV_TIMEOUT) or 120.0)
            pid = int(env[ENV_PID]) if (env.get(ENV_PID) or "").strip() else None
            ctx = int(env[ENV_CONTEXT]) if (env.get(ENV_CONTEXT) or "").strip() else None
        except ValueError as exc:
            raise InputError(f"{ENV_TIMEOUT}, {ENV_PID} and {ENV_CONTEXT} must be numbers: {exc}") from exc
        return cls(url, env.get(ENV_MODEL) or None, env.get(ENV_KEY_NAME) or ENV_KEY, timeout,
                   parse_indices(env.get(ENV_GPUS)), pid, (env.get(ENV_ENERGY) or "auto").strip().lower(), ctx)


def is_local_host(host: str) -> bool:
    """True when ``host`` is this machine (loopback, ``localhost``, or one of its own addresses)."""
    h = (host or "").strip("[]").lower()
    if h in ("localhost", "0.0.0.0", "::", ""):
        return True
    try:
        if ipaddress.ip_address(h).is_loopback:
            return True
    except ValueError:
        pass
    try:
        targets = {ai[4][0] for ai in socket.getaddrinfo(h, None)}
    except OSError:
        return False
    if any(ipaddress.ip_address(t.split("%")[0]).is_loopback for t in targets):
        return True
    return bool(targets & _own_addresses())


def _own_addresses() -> set[str]:
    out: set[str] = set()
    try:
        import psutil

        for addrs in psutil.net_if_addrs().values():
            out.update(a.address.split("%")[0] for a in addrs if a.family in (socket.AF_INET, socket.AF_INET6))
    except Exception as exc:  # noqa: BLE001 - psutil missing or restricted: fall back to the host name
        _log.debug("psutil missing or restricted: fall back to the host name: %s", exc)
        pass
    try:
        out.update(ai[4][0] for ai in socket.getaddrinfo(socket.gethostname(), None))
    except OSError:
        pass
    return out
