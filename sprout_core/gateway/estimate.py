"""Energy of a request to an upstream Sprout cannot meter (a hosted API): the ``ecologits`` package's estimate.

EcoLogits models a batched server from the model's (published or assumed) parameter count and the output
tokens; it ignores input tokens and knows only the models in its own list. The gateway reports its midpoint
as ``energy_j`` with ``energy_j_low``/``energy_j_high`` (its range), labelled *estimated*, and ``None`` with
the reason for a model outside the list. It runs offline (its model list ships with the package).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from sprout_core.carbon import J_PER_KWH

_log = logging.getLogger("sprout.gateway.estimate")

#: providers EcoLogits knows, tried in order when the operator does not name one
PROVIDERS = ("openai", "anthropic", "mistralai", "google_genai", "cohere", "huggingface_hub")
ASSUMPTIONS = ("EcoLogits models a batched inference server from the model's parameter count and output tokens; "
               "it ignores input tokens and the real server's load")


@dataclass(frozen=True)
class Estimate:
    """An estimate in J (``None`` = unknown, with ``reason``) and its low/high range."""

    energy_j: float | None
    low_j: float | None
    high_j: float | None
    label: str
    reason: str = ""


def provider_for(host: str) -> str | None:
    """EcoLogits' provider for an API host name (``None``: try every provider)."""
    h = (host or "").lower()
    for key, prov in (("openai", "openai"), ("anthropic", "anthropic"), ("mistral", "mistralai"),
                      ("googleapis", "google_genai"), ("cohere", "cohere"), ("huggingface", "huggingface_hub")):
        if key in h:
            return prov
    return None


def ecologits_energy(model: str, output_tokens: int, latency_s: float, provider: str | None = None) -> Estimate:
    """EcoLogits' energy for one request (see the module docstring)."""
    try:
        from ecologits.tracers.utils import llm_impacts
    except ImportError as exc:  # pragma: no cover - a listed requirement
        return Estimate(None, None, None, "n/a", f"the ecologits package is not installed ({exc})")
    import logging

    logging.getLogger("ecologits").setLevel(logging.ERROR)
    tried = [provider] if provider else list(PROVIDERS)
    for prov in tried:
        try:
            imp = llm_impacts(prov, model, max(0, int(output_tokens)), max(1e-3, float(latency_s)))
        except Exception as exc:  # noqa: BLE001 - an unknown provider or model: try the next
            _log.debug("an unknown provider or model: try the next: %s", exc)
            continue
        if getattr(imp, "errors", None) or getattr(imp, "energy", None) is None:
            continue
        v = imp.energy.value
        lo, hi = (float(v.min), float(v.max)) if hasattr(v, "min") else (float(v), float(v))
        lo, hi = lo * J_PER_KWH, hi * J_PER_KWH
        warn = "; ".join(w.message for w in (getattr(imp, "warnings", None) or []))
        label = (f"estimated (ecologits, provider {prov}, model {model}): {ASSUMPTIONS}" + (f"; {warn}" if warn else ""))
        return Estimate((lo + hi) / 2.0, lo, hi, label)
    where = f"provider {provider}" if provider else "any provider"
    return Estimate(None, None, None, "n/a", f"model {model!r} is not in EcoLogits' list for {where}: energy unknown")
