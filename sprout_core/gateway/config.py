"""The gateway's settings (:class:`GatewayConfig`), checked before anything starts (``InputError``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sprout_core import optimizer as opt
from sprout_core import validate as V
from sprout_core.defaults import DEFAULT_ZONE
from sprout_core.errors import InputError
from sprout_core.gateway.planner import POLICIES
from sprout_core.schedule import ScheduleParams

CI_SOURCES = ("trace", "fixed", "electricitymaps")
ENERGY_MODES = ("auto", "ecologits", "none")
#: request body limit (bytes) and the largest ``max_tokens`` a client may ask for, by default
DEFAULT_MAX_BODY_BYTES = 1_000_000
DEFAULT_MAX_TOKENS = 4096


@dataclass(frozen=True)
class GatewayConfig:
    """What ``python -m sprout_core gateway`` was told (see ``commands/gateway.py`` for each flag).

    ``upstream``: base URL of an OpenAI-compatible engine (``…/v1``); ``model_name``: the served model (``None``:
    the first the upstream lists); ``ci_source``: ``trace`` (``zone``/``year``), ``fixed`` (``ci``) or
    ``electricitymaps``; ``energy``: ``auto`` (meter a local upstream, EcoLogits' estimate for a remote one),
    ``ecologits`` (always the estimate) or ``none``.
    """

    upstream: str
    model_name: str | None = None
    policy: str = "sprout"
    ci: float | None = None
    zone: str = DEFAULT_ZONE  # sprout_core.defaults: the one default zone
    year: int | None = None
    ci_source: str = "trace"
    ci_column: str = "direct"
    xi: float = 0.1
    confidence: float = 0.9
    profile: str = "llama2-13b-a100"
    solver: str = "exact"
    pue: float = 1.0
    embodied: str = "sprout-paper"
    api_key_env: str = "SPROUT_SERVER_API_KEY"
    judge: str | None = None
    eval_prompts: Path | None = None
    n_eval: int = 20
    store_prompts: bool = False
    store: bool = True
    db_path: Path | None = None
    seed: int = 0
    timeout_s: float = 120.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_tokens: int = DEFAULT_MAX_TOKENS
    energy: str = "auto"
    ecologits_provider: str | None = None
    electricitymaps_url: str | None = None
    electricitymaps_token_env: str = "ELECTRICITYMAPS_API_TOKEN"
    requests_per_hour: float | None = None
    schedule: ScheduleParams = field(default_factory=ScheduleParams)
    evaluator_memory_h: int = 168

    def __post_init__(self) -> None:
        from sprout_core.serving.client import normalize_base_url

        object.__setattr__(self, "upstream", normalize_base_url(self.upstream))
        V.choice("policy", self.policy, POLICIES)
        V.choice("carbon-intensity source", self.ci_source, CI_SOURCES)
        V.choice("energy mode", self.energy, ENERGY_MODES)
        V.choice("intensity column", self.ci_column, ("direct", "lca"))
        if self.ci_source == "fixed" and self.ci is None:
            raise InputError("--ci-source fixed needs --ci G_PER_KWH")
        if self.ci is not None:
            V.number("--ci", self.ci, 0, 2000, unit="g CO2e/kWh")
        V.number("--xi", self.xi, 0.0, 1.0)
        opt.z_value(self.confidence)
        V.number("--pue", self.pue, *V.PUE_RANGE)
        V.whole("--max-tokens", self.max_tokens, 1, V.MAX_NEW_TOKENS)
        V.whole("--max-body-bytes", self.max_body_bytes, 1024, 100_000_000)
        V.whole("--n-eval", self.n_eval, 1, 10_000)
        V.number("--timeout", self.timeout_s, 0, 3600, lo_open=True, unit="s")
        if self.solver not in ("exact", "pulp"):
            raise InputError(f"--solver must be exact or pulp, not {self.solver!r}")
        if self.solver == "pulp" and self.confidence > 0.5:
            raise InputError("--solver pulp solves the plug-in LP only: use it with --confidence 0.5")
        if self.requests_per_hour is not None:
            V.number("--requests-per-hour", self.requests_per_hour, 0, 1e9, lo_open=True)
        if self.eval_prompts is not None and not Path(self.eval_prompts).is_file():
            raise InputError(f"--eval-prompts {self.eval_prompts}: no such file (one prompt per line, or JSONL "
                             "with 'prompt' and optional 'task')")
        for name in ("api_key_env", "electricitymaps_token_env"):
            v = getattr(self, name)
            if v and not v.replace("_", "").isalnum():
                raise InputError(f"{v!r} is not an environment variable name")

