"""Sprout as a serving system: an OpenAI-compatible, carbon-aware gateway (issue 22).

* :mod:`.app` — the FastAPI app (``create_app``): endpoints, per-request level, directive, energy, store row;
* :mod:`.planner` — the hourly decision and the evaluator schedule, one hour at a time (same as ``simulate``);
* :mod:`.intensity` — the carbon intensity now: fixed, the zone's trace, or Electricity Maps (opt-in);
* :mod:`.estimate` — EcoLogits' energy estimate for an upstream Sprout cannot meter;
* :mod:`.config` — the settings, checked before anything starts.

``python -m sprout_core gateway`` (``sprout_core/commands/gateway.py``) runs it with uvicorn.
"""
