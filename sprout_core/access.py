"""Who may do what: the local (single-user) mode and the *shared* (class) mode.

Sprout's server binds to 127.0.0.1 by default, so only the person at the machine can use it and may do
everything (load any local model folder, set torch threads, …). Serving a class is a deliberate choice
of the operator (``scripts/start.sh --shared`` or ``SPROUT_SHARED=1``); in **shared mode**:

* model and LLM-judge folders come only from the operator's list — ``SPROUT_MODELS`` (folders separated
  by ``:``) and/or every model folder directly under ``SPROUT_MODEL_ROOT`` — plus the embedded model;
  users pick from that list by name and never type a path (nothing on the server's disk can be probed);
* process-wide settings (torch threads, loading a model that would evict another user's) are the
  operator's alone: they are set with environment variables when the server starts;
* an evaluation run started from the app answers at most :data:`SHARED_MAX_PROMPTS` prompts, so no visitor
  holds the shared model for hours;
* each browser is a *visitor* (``ui.visitor_id``: a random id kept in the address, surviving reloads; the
  state folder names it only by :func:`visitor_namespace`, a hash): a visitor's grid uploads and prompt files
  are theirs alone, shared data (shipped, public-folder and the operator's traces) is read-only for them,
  and ``grid clear --visitors`` removes every visitor's files; the operator (:func:`is_operator`) keeps
  every power;
* the server also counts as shared when it listens on a non-loopback address without the flag
  (secure by default: binding to all interfaces never gives strangers a free-text folder box).

Independent of the mode, model weights are loaded from safetensors only; PyTorch pickle files
(``pytorch_model.bin``), which can run code when loaded, need the operator's ``SPROUT_ALLOW_PICKLE=1``.
"""
from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from sprout_core.errors import NotAllowedError
from sprout_core.settings import Settings

SHARED_ENV = "SPROUT_SHARED"
MODELS_ENV = "SPROUT_MODELS"
MODEL_ROOT_ENV = "SPROUT_MODEL_ROOT"
ALLOW_PICKLE_ENV = "SPROUT_ALLOW_PICKLE"
#: in shared mode an evaluation run started from the app answers at most this many prompts
SHARED_MAX_PROMPTS = 30
EMBEDDED = "embedded"
#: the visitor id outside class mode: the one person at the machine, the operator
LOCAL_VISITOR = "local"
_VISITOR_RE = re.compile(r"^[A-Za-z0-9_-]{22,64}$")


def _flag(name: str) -> bool:
    return Settings.from_env().flag(name)


def is_loopback(address: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; False for wildcard and LAN addresses."""
    a = (address or "").strip().strip("[]")
    if a in ("localhost",):
        return True
    if a in ("", "0.0.0.0", "::"):
        return False
    try:
        return ipaddress.ip_address(a).is_loopback
    except ValueError:
        return False  # a host name: assume others can reach it


def shared_mode(bound_address: str | None = None) -> bool:
    """Shared (class) mode: asked for with ``SPROUT_SHARED=1``, or implied by a non-loopback bind address.

    ``bound_address``: the address the server listens on (``None`` outside a server, e.g. the CLI)."""
    if _flag(SHARED_ENV):
        return True
    return bound_address is not None and not is_loopback(bound_address)


def allow_pickle() -> bool:
    """Whether the operator allowed PyTorch pickle weights (``SPROUT_ALLOW_PICKLE=1``)."""
    return _flag(ALLOW_PICKLE_ENV)


@dataclass(frozen=True)
class ModelChoice:
    """An entry of the operator's model list: a display name (the folder's name) and the spec to load."""

    label: str
    spec: str


def allowed_models() -> list[ModelChoice]:
    """The embedded model, the folders in ``SPROUT_MODELS`` and the model folders under ``SPROUT_MODEL_ROOT``.

    A folder counts when it holds a ``config.json``; labels are folder names (made unique), never paths."""
    out = [ModelChoice("Embedded SmolLM2-135M-Instruct", EMBEDDED)]
    folders: list[Path] = []
    s = Settings.from_env()
    folders.extend(s.models)
    r = s.model_root
    if r is not None:
        try:
            folders.extend(sorted(p for p in r.iterdir() if p.is_dir() and (p / "config.json").exists()))
        except OSError:
            pass
    seen: dict[str, int] = {}
    done: set[str] = set()
    for f in folders:
        try:
            key = str(f.resolve())
        except OSError:
            continue
        if key in done:
            continue
        done.add(key)
        label = f.name or key
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            label = f"{label} ({seen[label]})"
        out.append(ModelChoice(label, key))
    return out


def check_model_spec(spec: str, shared: bool, what: str = "model") -> str:
    """``spec`` if this mode may load it: anything locally; in shared mode only the operator's list.

    Raises :class:`NotAllowedError` (the message names no path) otherwise."""
    spec = (spec or "").strip() or EMBEDDED
    if not shared:
        return spec
    allowed = {c.spec for c in allowed_models()}
    if spec == EMBEDDED:
        return spec
    try:
        key = str(Path(spec).expanduser().resolve())
    except (OSError, RuntimeError):
        key = spec
    if key in allowed:
        return key
    raise NotAllowedError(f"This Sprout is shared: the {what} must be one of the operator's models "
                          f"({', '.join(c.label for c in allowed_models())}). Ask the operator to add it "
                          f"({MODELS_ENV} or {MODEL_ROOT_ENV}).")


def require_operator(action: str, shared: bool) -> None:
    """Raise :class:`NotAllowedError` for a process-wide ``action`` in shared mode."""
    if shared:
        raise NotAllowedError(f"This Sprout is shared: {action} is the operator's setting, fixed when the server "
                              "starts (see the README, 'Serving a class').")


# ------------------------------------------------------------------ visitors (class mode)

def new_visitor_id() -> str:
    """A fresh class-mode visitor id: 128 random bits, URL-safe (22 characters)."""
    return secrets.token_urlsafe(16)


def valid_visitor_id(value: object) -> bool:
    """Whether ``value`` looks like an id :func:`new_visitor_id` made (22–64 URL-safe characters)."""
    return isinstance(value, str) and bool(_VISITOR_RE.match(value))


def is_operator(visitor: str | None) -> bool:
    """The operator (the local user, :data:`LOCAL_VISITOR`, or ``None`` = the CLI) keeps every power."""
    return visitor in (None, LOCAL_VISITOR)


def visitor_namespace(visitor: str) -> str:
    """The folder name of a class-mode visitor's own data under ``<state>/visitors``: a hash of the id, so
    the id (a bearer secret) never appears on disk and no id can name a path. Raises
    :class:`NotAllowedError` for an id :func:`valid_visitor_id` refuses."""
    if not valid_visitor_id(visitor):
        raise NotAllowedError("This visitor id is not valid; reload the page without '?visitor=…' in the address.")
    return hashlib.sha256(visitor.encode("ascii")).hexdigest()[:24]
