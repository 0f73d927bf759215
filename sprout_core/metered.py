"""Metered generation: one answer = token stream + energy window + carbon account + a stored row.

The glue between :mod:`sprout_core.generation`, :mod:`sprout_core.energy`, :mod:`sprout_core.carbon`
and :mod:`sprout_core.store`, shared by the Playground, the ``generate`` command and the benchmarks::

    settings = CarbonSettings(carbon.trace_intensity("DE", 2024, None))
    ms = metered_stream(lm, prompt, directive, params, meter, settings, run_id=store.new_run_id())
    for live in ms:                  # LiveChunk: text, new_tokens, elapsed_s, power_w, energy_j
        ...
    ms.outcome                       # MeteredOutcome(result, reading, carbon, request_id, store_error)

Units: J, W, s, g CO₂e, g/kWh.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import pandas as pd

from sprout_core import carbon as carbon_mod
from sprout_core import store
from sprout_core.carbon import DEFAULT_EMBODIED, CarbonAccount, EmbodiedModel, IntensityChoice, account, savings_pct
from sprout_core.energy import EnergyMeter, EnergyReading


@dataclass(frozen=True)
class CarbonSettings:
    """How energy is priced: intensity (g/kWh, with its label), PUE (≥ 1) and the embodied model."""

    intensity: IntensityChoice
    pue: float = 1.0
    embodied: EmbodiedModel = DEFAULT_EMBODIED

    def price(self, reading: EnergyReading) -> CarbonAccount:
        """The carbon account of one energy reading under these settings."""
        return account(reading.energy_j, reading.duration_s, self.intensity.ci_g_per_kwh, self.pue, self.embodied,
                       energy_method=reading.method, ci_label=self.intensity.label)


@dataclass(frozen=True)
class LiveChunk:
    """A streamed piece of text with the energy so far: ``power_w`` W and ``energy_j`` J (``None`` until known)."""

    text: str
    new_tokens: int
    elapsed_s: float
    power_w: float | None
    energy_j: float | None
    method: str

    @property
    def tokens_per_s(self) -> float | None:
        return self.new_tokens / self.elapsed_s if self.elapsed_s > 0 else None


@dataclass
class MeteredOutcome:
    """One answer with its energy and carbon; ``request_id`` is its row in the store (``None`` if not stored)."""

    result: Any  # GenerationResult
    reading: EnergyReading
    carbon: CarbonAccount
    request_id: int | None = None
    store_error: str | None = None
    zone: str | None = None


@dataclass
class MeteredStream:
    """Iterate for :class:`LiveChunk`; :attr:`outcome` is set once exhausted (an abandoned stream records nothing)."""

    lm: Any
    prompt: str
    directive: Any
    params: Any
    meter: EnergyMeter
    settings: CarbonSettings
    save: bool = True
    run_id: str | None = None
    origin: str = "playground"
    task: str | None = None
    placement: str | None = None
    db_path: Any = None
    outcome: MeteredOutcome | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        from sprout_core.generation import stream_generate

        # validates the prompt before anything runs (PromptError)
        self._stream = stream_generate(self.lm, self.prompt, self.directive, self.params, self.placement)

    def __iter__(self) -> Iterator[LiveChunk]:
        from sprout_core.generation import generation_lock

        with generation_lock(self.lm):  # in-process backends only; a server schedules concurrent requests
            with self.meter.window() as w:
                self._stream.on_tokens = w.add_tokens  # a shared server's meter splits energy by tokens
                inner = iter(self._stream)
                try:
                    for chunk in inner:
                        p, e = w.live()
                        yield LiveChunk(chunk.text, chunk.new_tokens, chunk.elapsed_s, p, e, self.meter.method)
                finally:
                    inner.close()  # consumer stopped early: stops and joins the worker so the model is free
        self._finish(w.reading)

    def _finish(self, reading: EnergyReading) -> None:
        res = self._stream.result
        acc = self.settings.price(reading)
        out = MeteredOutcome(res, reading, acc, zone=self.settings.intensity.zone)
        if self.save and res is not None:
            rec = store.RequestRecord.from_parts(res, reading, acc, zone=self.settings.intensity.zone, task=self.task,
                                                 run_id=self.run_id, origin=self.origin)
            try:
                out.request_id = store.record_request(rec, path=self.db_path)
            except store.StoreError as exc:
                out.store_error = str(exc)
        self.outcome = out


def metered_stream(lm, prompt: str, directive, params, meter: EnergyMeter, settings: CarbonSettings, *,
                   save: bool = True, run_id: str | None = None, origin: str = "playground", task: str | None = None,
                   placement: str | None = None, db_path=None) -> MeteredStream:
    """A :class:`MeteredStream` (raises ``PromptError`` at once on a bad prompt)."""
    return MeteredStream(lm, prompt, directive, params, meter, settings, save, run_id, origin, task, placement, db_path)


def metered_generate(lm, prompt: str, directive, params, meter: EnergyMeter, settings: CarbonSettings, **kw) -> MeteredOutcome:
    """Generate one whole answer with metering (see :func:`metered_stream`)."""
    ms = metered_stream(lm, prompt, directive, params, meter, settings, **kw)
    for _ in ms:
        pass
    assert ms.outcome is not None
    return ms.outcome


def level_table(outcomes: list[MeteredOutcome], settings: CarbonSettings | None = None) -> pd.DataFrame:
    """Per level: tokens, time, energy (J, method, ±), carbon (g), savings vs L0 (%).

    With ``settings`` the carbon is re-priced (zone/hour/slider changes carbon, never energy).
    Savings are ``None`` where L0 is missing or its value unknown.
    """
    rows = []
    accounts = [settings.price(o.reading) if settings else o.carbon for o in outcomes]
    base = next(((o, a) for o, a in zip(outcomes, accounts) if o.result.level == "L0"), None)
    for o, a in zip(outcomes, accounts):
        r, rd = o.result, o.reading
        rows.append({
            "level": r.level,
            "directive": r.directive or "(none)",
            "new tokens": r.new_tokens,
            "time (s)": rd.duration_s,
            "energy (J)": rd.energy_j,
            "± energy (J)": rd.uncertainty_j,
            "energy method": rd.method,
            "mean power (W)": rd.power_w_mean,
            "J per token": (rd.energy_j / r.new_tokens) if (rd.energy_j is not None and r.new_tokens) else None,
            "operational (g CO₂e)": a.operational_g,
            "embodied (g CO₂e)": a.embodied_g,
            "total (g CO₂e)": a.total_g,
            "energy saving vs L0 (%)": savings_pct(rd.energy_j, base[0].reading.energy_j) if base and o is not base[0] else None,
            "carbon saving vs L0 (%)": savings_pct(a.total_g, base[1].total_g) if base and o is not base[0] else None,
            "flags": ", ".join(rd.flags),
        })
    return pd.DataFrame(rows)


def elsewhere_table(energy_j: float, duration_s: float, settings: CarbonSettings, year: int | None = None,
                    hour: int | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The same energy priced in every zone (yearly mean or hour-of-year), sorted by total g; plus messages."""
    prices, msgs = carbon_mod.price_elsewhere(energy_j, year=year, hour=hour, pue=settings.pue,
                                              column=settings.intensity.column)
    emb = settings.embodied.grams(duration_s)
    df = pd.DataFrame([{"zone": p.zone, "year": p.year, "carbon intensity (g/kWh)": p.ci_g_per_kwh,
                        "operational (g CO₂e)": p.operational_g, "embodied (g CO₂e)": emb,
                        "total (g CO₂e)": p.operational_g + emb} for p in prices])
    return df, msgs
