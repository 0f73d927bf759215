"""The one record of an answer: :class:`AnswerRecord`.

Every answer Sprout generates — Playground, lesson, ``generate``, an evaluation run, the gateway — ends
as one frozen :class:`AnswerRecord`: what was asked (prompt, level, directive, backend, model), what came
back (text, tokens, seconds, why it stopped), what it cost (energy with its method label, carbon with the
intensity, PUE and embodied model that priced it) and where it is stored. It is built once, from the
generation result, the energy reading and the carbon account (:meth:`AnswerRecord.from_parts`), written
to storage once (:func:`sprout_core.store.record_answer`, the ``requests`` table; evaluation answers go
to ``eval_answers`` with the same energy labels) and read back as the same type
(:meth:`AnswerRecord.from_row`, :func:`sprout_core.store.read_answers`).

Units are in the field names or their docs: s, J, W, g CO₂e, g CO₂e/kWh. ``None`` is unknown ("n/a"),
never 0. Energy is labelled by :attr:`AnswerRecord.energy_method` (``measured:…``, ``estimated:…``,
``reference:…`` or ``n/a``); :attr:`AnswerRecord.energy_label` is its first word.

Nothing here imports streamlit, the store or a backend: the record is plain data.
"""
from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

#: ``finish_reason`` of an answer cut short by its consumer (Stop, reload, SIGINT/SIGTERM)
ABORTED = "aborted"

#: status words (:attr:`AnswerRecord.status`)
COMPLETE, PARTIAL, FAILED = "complete", ABORTED, "error"


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def iso_utc(t: float | None) -> str | None:
    """A wall-clock time (``time.time()``, s) as ISO-8601 UTC with microseconds; ``None`` when unknown."""
    return None if t is None else datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="microseconds")


def hour_iso(t: float | None) -> str | None:
    """The UTC hour a wall-clock time (s) falls in, as ISO-8601 (``2024-06-01T12:00:00+00:00``)."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).replace(minute=0, second=0, microsecond=0).isoformat()


def energy_label(method: str | None) -> str:
    """``measured`` / ``estimated`` / ``reference`` / ``n/a`` — the first word of an energy method label."""
    kind = (method or "n/a").split(":", 1)[0]
    return kind if kind in ("measured", "estimated", "reference") else "n/a"


@dataclass(frozen=True)
class AnswerRecord:
    """One answer with its energy and carbon (see the module docstring). Frozen: build a changed copy with
    :meth:`replace`."""

    # --- what was asked
    level: str
    """directive level (``L0``, ``L1`` …)"""
    prompt: str = ""
    """the user's prompt (``""`` where the operator did not allow storing it)"""
    directive: str = ""
    """directive text (``""`` for L0)"""
    backend: str = "transformers"
    """``transformers`` / ``llama.cpp`` (in process) / ``server`` (an OpenAI-compatible engine)"""
    model: str = ""
    device: str = ""
    """``cpu``, ``cuda:0``, ``server:HOST:PORT`` …"""
    placement: str = ""
    """where the directive went: ``system`` message or ``user`` turn"""
    max_new_tokens: int | None = None
    """the cap on new tokens (tokens)"""
    max_new_tokens_capped: bool = False
    """the cap was lowered to fit the model's context"""
    do_sample: bool = False
    seed: int | None = None
    task: str | None = None
    """task label (``qa``, ``math`` …) where known"""
    run_id: str | None = None
    """groups the levels of one run (Playground run, CLI call)"""
    origin: str | None = None
    """``playground`` / ``lesson`` / ``cli`` / ``evaluation`` / ``gateway`` / ``bench`` …"""
    pinned: bool | None = None
    """the client pinned the level (gateway ``X-Sprout-Level``); ``None`` where levels are not assigned"""
    # --- what came back
    text: str = ""
    """the answer (partial when :attr:`partial`)"""
    prompt_tokens: int | None = None
    """tokens the model read: prompt + directive + chat template (tokens; ``None`` if a server did not say)"""
    new_tokens: int | None = 0
    """generated tokens (the gateway's ``completion_tokens``)"""
    ttft_s: float | None = None
    """time to the first new token (s)"""
    total_s: float | None = 0.0
    """generation time (s)"""
    tokens_per_s: float | None = None
    """new tokens ÷ total seconds (tokens/s)"""
    finish_reason: str = "eos"
    """``eos`` / ``length`` / ``error`` / ``aborted``"""
    partial: bool = False
    """the answer was cut mid-stream (``finish_reason`` says why)"""
    error: str | None = None
    started_at: float | None = None
    """wall-clock start (s since the epoch)"""
    # --- energy
    energy_j: float | None = None
    """energy of the answer's window (J); ``None`` = unknown"""
    energy_method: str = "n/a"
    """``measured:nvml-counter`` / ``measured:rapl`` / ``estimated:cpu-tdp`` / ``estimated:ecologits`` / ``n/a`` …"""
    energy_source: str | None = None
    """the meter, with its device"""
    energy_uncertainty_j: float | None = None
    """± J where the meter states it"""
    energy_j_low: float | None = None
    """lower end of an estimate's range (J), e.g. EcoLogits"""
    energy_j_high: float | None = None
    """upper end of an estimate's range (J)"""
    energy_flags: tuple[str, ...] = ()
    """``short-window`` …"""
    power_w_mean: float | None = None
    """mean power over the window (W)"""
    energy_duration_s: float | None = None
    """length of the energy window (s)"""
    window_start_utc: str | None = None
    """ISO-8601 UTC start of the energy window"""
    window_end_utc: str | None = None
    # --- carbon
    zone: str | None = None
    """grid zone of the intensity (``None`` for a typed intensity)"""
    ci_g_per_kwh: float | None = None
    """carbon intensity used (g CO₂e/kWh)"""
    ci_label: str | None = None
    """where the intensity came from (trace, hour, override …)"""
    ci_source: str | None = None
    """the intensity's source kind: ``trace``, ``fixed``, ``electricitymaps``, ``trace (live source unavailable: …)``"""
    hour_utc: str | None = None
    """the UTC hour the answer was priced at, ISO-8601"""
    pue: float | None = None
    """PUE used (≥ 1)"""
    carbon_operational_g: float | None = None
    """kWh × CI × PUE (g CO₂e)"""
    carbon_embodied_g: float | None = None
    """embodied share for the answer's duration (g CO₂e)"""
    carbon_total_g: float | None = None
    """operational + embodied (g CO₂e); ``None`` when the operational part is unknown"""
    embodied_model: str | None = None
    # --- where it is stored
    request_id: int | None = None
    """row id in ``requests`` (``None`` until stored, or not stored)"""
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)
    """unique id (a queued row is never stored twice)"""
    ts_utc: str = field(default_factory=_now_iso)
    """ISO-8601 UTC time the record was made (≈ the answer finished)"""

    # ------------------------------------------------------------------ derived
    @property
    def status(self) -> str:
        """``complete`` / ``aborted`` (partial answer) / ``error``."""
        if self.error or self.finish_reason == "error":
            return FAILED
        return PARTIAL if self.finish_reason == ABORTED else COMPLETE

    @property
    def aborted(self) -> bool:
        return self.finish_reason == ABORTED

    @property
    def energy_label(self) -> str:
        """``measured`` / ``estimated`` / ``reference`` / ``n/a``."""
        return energy_label(self.energy_method)

    @property
    def completion_tokens(self) -> int | None:
        """OpenAI's name for :attr:`new_tokens`."""
        return self.new_tokens

    @property
    def carbon_g(self) -> float | None:
        """Total carbon (g CO₂e): operational with PUE plus embodied."""
        return self.carbon_total_g

    def replace(self, **changes: Any) -> "AnswerRecord":
        """A copy with ``changes`` (unknown names raise ``TypeError``)."""
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_parts(cls, result: Any = None, reading: Any = None, carbon: Any = None, **context: Any) -> "AnswerRecord":
        """The record of a ``GenerationResult``-like ``result``, an ``EnergyReading`` and a ``CarbonAccount``
        (any may be ``None``); ``context`` sets the other fields (``zone``, ``task``, ``run_id``, ``origin`` …)."""
        data: dict[str, Any] = {}
        if result is not None:
            for name in ("level", "directive", "prompt", "text", "prompt_tokens", "new_tokens", "ttft_s", "total_s",
                         "tokens_per_s", "finish_reason", "model", "device", "placement", "max_new_tokens",
                         "max_new_tokens_capped", "do_sample", "seed", "started_at", "error", "backend", "partial"):
                if hasattr(result, name):
                    data[name] = getattr(result, name)
            if data.get("model") is not None and not isinstance(data["model"], str):
                data["model"] = str(data["model"])
        if reading is not None:
            data.update(energy_j=reading.energy_j, energy_method=reading.method or "n/a", energy_source=reading.source,
                        energy_uncertainty_j=reading.uncertainty_j, energy_flags=tuple(reading.flags or ()),
                        power_w_mean=reading.power_w_mean, energy_duration_s=reading.duration_s,
                        window_start_utc=iso_utc(getattr(reading, "started_at", None)),
                        window_end_utc=iso_utc(getattr(reading, "ended_at", None)))
        if carbon is not None:
            data.update(ci_g_per_kwh=carbon.ci_g_per_kwh, ci_label=carbon.ci_label, pue=carbon.pue,
                        carbon_operational_g=carbon.operational_g, carbon_embodied_g=carbon.embodied_g,
                        carbon_total_g=carbon.total_g, embodied_model=carbon.embodied_name)
        data.update(context)
        data.setdefault("level", "")
        return cls(**_clean(data))

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "AnswerRecord":
        """The record back from a stored row (``requests`` or ``eval_answers``: ``answer`` or ``text``, flags
        as a comma-separated string, 0/1 for booleans, ``id`` as ``request_id``) or from :meth:`as_row`.
        Keys that are not fields are ignored; missing ones take their defaults."""
        data = {k: row[k] for k in row.keys() if k in _FIELDS}
        if "text" not in data and row.get("answer") is not None:
            data["text"] = row["answer"]
        if "request_id" not in data and row.get("id") is not None and "ts_utc" in row:
            data["request_id"] = row["id"]
        return cls(**_clean(data))

    # ------------------------------------------------------------------ writing
    def as_row(self) -> dict[str, Any]:
        """The record as one flat dict (CLI ``--json``, evaluation answers): every field, flags as a list,
        plus ``status`` and ``energy_label``."""
        out = dataclasses.asdict(self)
        out["energy_flags"] = list(self.energy_flags)
        out["status"] = self.status
        out["energy_label"] = self.energy_label
        return out

    def to_columns(self) -> dict[str, Any]:
        """The record as ``requests`` columns: ``text`` → ``answer``, flags comma-separated (``None`` if none),
        booleans 0/1; ``request_id`` (the row id) is not a column."""
        out = dataclasses.asdict(self)
        out["answer"] = out.pop("text")
        out.pop("request_id")
        out["energy_flags"] = ",".join(self.energy_flags) or None
        for k in _BOOLS:
            if out[k] is not None:
                out[k] = int(bool(out[k]))
        return out


_FIELDS = frozenset(f.name for f in dataclasses.fields(AnswerRecord))
_BOOLS = ("max_new_tokens_capped", "do_sample", "partial", "pinned")
_NOT_NONE = {"prompt": "", "directive": "", "text": "", "model": "", "device": "", "placement": "",
             "backend": "transformers", "finish_reason": "eos", "energy_method": "n/a", "level": ""}


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    """Stored values to field types: ``None`` → the default for the text fields that have one, flags to a
    tuple, 0/1 to booleans, a missing ``tokens_per_s`` from tokens ÷ seconds."""
    for k, default in _NOT_NONE.items():
        if k in data and data[k] is None:
            data[k] = default
    flags = data.get("energy_flags")
    if flags is None:
        data.pop("energy_flags", None)
    elif isinstance(flags, str):
        data["energy_flags"] = tuple(f.strip() for f in flags.split(",") if f.strip())
    else:
        data["energy_flags"] = tuple(str(f) for f in flags)
    for k in _BOOLS:
        if data.get(k) is not None:
            data[k] = bool(data[k])
    for k in ("max_new_tokens_capped", "do_sample", "partial"):
        if k in data and data[k] is None:
            data.pop(k)
    for k in ("uid", "ts_utc"):
        if data.get(k) is None:
            data.pop(k, None)
    if data.get("tokens_per_s") is None and data.get("new_tokens") and data.get("total_s"):
        data["tokens_per_s"] = data["new_tokens"] / data["total_s"]
    return data
