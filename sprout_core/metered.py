"""Metered generation: one answer = token stream + energy window + carbon account + a stored row.

The glue between :mod:`sprout_core.generation`, :mod:`sprout_core.energy`, :mod:`sprout_core.carbon`
and :mod:`sprout_core.store`, shared by the Playground, the lesson, the ``generate`` command, the
evaluation runner and the benchmarks::

    settings = CarbonSettings(carbon.trace_intensity(DEFAULT_ZONE, DEFAULT_YEAR, None))
    ms = metered_stream(lm, prompt, directive, params, meter, settings, run_id=store.new_run_id(),
                        on_wait=lambda ahead: print(f"waiting, {ahead} ahead"))
    for live in ms:                  # LiveChunk: text, new_tokens, elapsed_s, power_w, energy_j, carbon_g
        ...
    ms.outcome                       # MeteredOutcome(result, reading, carbon, request_id, store_error)
    ms.outcome.record                # the one AnswerRecord of the answer (store, CLI JSON, evaluation db)

:class:`MeteredOutcome` holds one answer's parts and its :class:`~sprout_core.record.AnswerRecord`
(:attr:`~MeteredOutcome.record`): every consumer reads that record (or its flat
:meth:`~MeteredOutcome.to_row`), nobody flattens a result/reading/account on its own. A stream whose
consumer stops early (page reload, Stop, a setting changed) still produces an outcome: the partial
answer with ``finish_reason='aborted'`` and the energy measured until then, stored like any other.

Units: J, W, s, g CO₂e, g/kWh.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import pandas as pd

from sprout_core import carbon as carbon_mod
from sprout_core import defaults, store
from sprout_core.carbon import DEFAULT_EMBODIED, CarbonAccount, EmbodiedModel, IntensityChoice, account, saving_pct
from sprout_core.energy import EnergyMeter, EnergyReading
from sprout_core.errors import DataFileError, InputError, MissingDataError
from sprout_core.generation import generation_lock, stream_generate
from sprout_core.record import AnswerRecord


@dataclass(frozen=True)
class CarbonSettings:
    """How energy is priced: intensity (g/kWh, with its label), PUE (≥ 1) and the embodied model."""

    intensity: IntensityChoice
    pue: float = 1.0
    embodied: EmbodiedModel = DEFAULT_EMBODIED

    def price(self, reading: EnergyReading) -> CarbonAccount:
        """The carbon account of one energy reading under these settings."""
        return self.price_energy(reading.energy_j, reading.duration_s, reading.method)

    def price_energy(self, energy_j: float | None, duration_s: float, method: str = "n/a") -> CarbonAccount:
        """The carbon account of ``energy_j`` J used over ``duration_s`` s (e.g. a stream's energy so far)."""
        return account(energy_j, max(0.0, duration_s), self.intensity.ci_g_per_kwh, self.pue, self.embodied,
                       energy_method=method, ci_label=self.intensity.label)


def default_settings(zone: str | None = None, year: int | None = None, hour: int | None = None,
                     ci: float | None = None, column: str = "direct", pue: float = 1.0,
                     embodied: str | EmbodiedModel = "sprout-paper",
                     strict: bool = False) -> tuple[CarbonSettings, list[str]]:
    """Carbon settings from plain values, and warnings: ``ci`` (g/kWh) wins; else ``zone`` (default
    :func:`sprout_core.defaults.default_zone`) in ``year`` (default :func:`~sprout_core.defaults.default_year`) at hour-of-year ``hour`` (default the
    yearly mean). An unreadable trace gives an unknown intensity (carbon n/a, never 0) and a warning —
    or, with ``strict`` (the user asked for that zone, year or hour), an :class:`InputError`."""
    from sprout_core import grid

    emb = carbon_mod.embodied_preset(embodied) if isinstance(embodied, str) else embodied
    if ci is not None:
        return CarbonSettings(carbon_mod.override_intensity(ci), pue, emb), []
    zone = zone or defaults.default_zone()
    try:
        if year is None:
            year = defaults.default_year(y for y, zones in grid.zones_by_year().items() if zone in zones)
            if year is None:
                raise MissingDataError(f"no carbon-intensity trace for zone {zone!r}")
        intensity = carbon_mod.trace_intensity(zone, year, hour, column)
    except (MissingDataError, DataFileError) as exc:
        if strict:
            raise InputError(f"carbon intensity for zone {zone!r}{f' in {year}' if year is not None else ''} is not "
                             f"available ({exc}). Pick another zone or year, or give one with --ci.") from None
        return (CarbonSettings(carbon_mod.unknown_intensity(str(exc)), pue, emb),
                [f"carbon intensity unknown ({exc}); operational carbon is n/a"])
    except ValueError as exc:  # an hour outside the trace
        raise InputError(str(exc)) from None
    return CarbonSettings(intensity, pue, emb), []


@dataclass(frozen=True)
class LiveChunk:
    """A streamed piece of text with the energy so far: ``power_w`` W, ``energy_j`` J and ``carbon_g`` g
    CO₂e (operational + embodied at the stream's carbon settings; ``None`` until known).

    ``text`` is empty for a heartbeat; ``new_tokens == 0`` means the model is still reading the prompt.
    """

    text: str
    new_tokens: int
    elapsed_s: float
    power_w: float | None
    energy_j: float | None
    method: str
    carbon_g: float | None = None
    prompt_tokens: int = 0

    @property
    def tokens_per_s(self) -> float | None:
        return self.new_tokens / self.elapsed_s if self.elapsed_s > 0 and self.new_tokens else None

    @property
    def reading_prompt(self) -> bool:
        return self.new_tokens == 0


@dataclass
class MeteredOutcome:
    """One answer with its energy and carbon — the one record of an answer.

    ``result`` (a ``GenerationResult``), ``reading`` (energy, J, with its method), ``carbon`` (g CO₂e at
    ``zone``'s intensity), ``request_id`` (its row in the store, ``None`` if not stored), ``store_error``
    (why it was not stored), ``task`` / ``run_id`` / ``origin`` (how it was asked).
    """

    result: Any  # GenerationResult
    reading: EnergyReading
    carbon: CarbonAccount
    request_id: int | None = None
    store_error: str | None = None
    zone: str | None = None
    task: str | None = None
    run_id: str | None = None
    origin: str | None = None
    _record: AnswerRecord | None = field(default=None, repr=False, compare=False)

    @property
    def aborted(self) -> bool:
        """True when the answer was cut short (its text is partial; energy is what was used until then)."""
        return getattr(self.result, "finish_reason", "") == "aborted"

    @property
    def level(self) -> str:
        return self.result.level

    @property
    def record(self) -> AnswerRecord:
        """The one record of this answer (:class:`sprout_core.record.AnswerRecord`), built once (its ``uid``
        is stable) and carrying ``request_id`` once stored."""
        if self._record is None or self._record.request_id != self.request_id:
            base = self._record or AnswerRecord.from_parts(self.result, self.reading, self.carbon, zone=self.zone,
                                                           task=self.task, run_id=self.run_id, origin=self.origin)
            self._record = base.replace(request_id=self.request_id)
        return self._record

    def to_row(self) -> dict[str, Any]:
        """The record as one flat dict (:meth:`sprout_core.record.AnswerRecord.as_row`): generation fields
        (``text``, tokens, s …), energy (J, method, ±, flags as a list), carbon (g CO₂e, intensity, PUE,
        embodied), ``status``, ``energy_label`` and where it is stored."""
        return self.record.as_row()

    def repriced(self, settings: CarbonSettings) -> CarbonAccount:
        """The same energy priced under other carbon settings (energy stays as measured)."""
        return settings.price(self.reading)


@dataclass
class MeteredStream:
    """Iterate for :class:`LiveChunk`; :attr:`outcome` is set once exhausted, or once the consumer
    stops early (then the partial answer is recorded with ``finish_reason='aborted'``).

    ``on_wait(ahead)`` is called while another caller holds the model (see
    :class:`~sprout_core.generation.GenerationQueue`); ``label`` names this caller to the others.
    """

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
    on_wait: Callable[[int], None] | None = None
    label: str = ""
    outcome: MeteredOutcome | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        # validates the prompt before anything runs (PromptError)
        self._stream = stream_generate(self.lm, self.prompt, self.directive, self.params, self.placement)

    @property
    def prompt_tokens(self) -> int | None:
        """Tokens the model reads before its first new token (prompt, directive, chat template); ``None``
        where a backend cannot tell before it answers."""
        return getattr(self._stream, "prompt_tokens", None)

    def __iter__(self) -> Iterator[LiveChunk]:
        window = None
        completed = False
        try:
            # in-process backends wait their turn (saying how many are ahead); a server schedules requests itself
            with generation_lock(self.lm, label=self.label or self.origin, on_wait=self.on_wait):
                with self.meter.window() as w:
                    window = w
                    self._stream.on_tokens = w.add_tokens  # a shared server's meter splits energy by tokens
                    inner = iter(self._stream)
                    try:
                        for chunk in inner:
                            p, e = w.live()
                            acc = self.settings.price_energy(e, chunk.elapsed_s, self.meter.method) if e is not None else None
                            yield LiveChunk(chunk.text, chunk.new_tokens, chunk.elapsed_s, p, e, self.meter.method,
                                            acc.total_g if acc else None, getattr(chunk, "prompt_tokens", 0) or 0)
                        completed = True
                    finally:
                        inner.close()  # consumer stopped early: stops and joins the worker so the model is free
        finally:
            # Runs on a normal end and when the consumer closed the stream (GeneratorExit): an
            # answer cut short is recorded too, with the energy measured until then.
            if window is not None and window.reading is not None and self._stream.result is not None:
                self._finish(window.reading, completed)

    def _finish(self, reading: EnergyReading, completed: bool) -> None:
        res = self._stream.result
        if not completed and res.finish_reason not in ("error", "aborted"):
            res.finish_reason, res.partial = "aborted", True
        acc = self.settings.price(reading)
        out = MeteredOutcome(res, reading, acc, zone=self.settings.intensity.zone, task=self.task, run_id=self.run_id,
                             origin=self.origin)
        if self.save:
            try:
                out.request_id = store.record_answer(out.record, path=self.db_path).request_id
            except store.StoreError as exc:
                out.store_error = str(exc)
        self.outcome = out


def metered_stream(lm, prompt: str, directive, params, meter: EnergyMeter, settings: CarbonSettings, *,
                   save: bool = True, run_id: str | None = None, origin: str = "playground", task: str | None = None,
                   placement: str | None = None, db_path=None, on_wait: Callable[[int], None] | None = None,
                   label: str = "") -> MeteredStream:
    """A :class:`MeteredStream` (raises ``PromptError`` at once on a bad prompt)."""
    return MeteredStream(lm, prompt, directive, params, meter, settings, save, run_id, origin, task, placement, db_path,
                         on_wait, label)


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
    Savings are ``None`` where L0 is missing, aborted or its value unknown, and for an aborted answer.
    """
    rows = []
    accounts = [settings.price(o.reading) if settings else o.carbon for o in outcomes]
    base = next(((o, a) for o, a in zip(outcomes, accounts) if o.result.level == "L0" and not o.aborted), None)
    for o, a in zip(outcomes, accounts):
        r, rd = o.result, o.reading
        comparable = base is not None and o is not base[0] and not o.aborted  # a cut answer saves nothing
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
            "energy saving vs L0 (%)": saving_pct(rd.energy_j, base[0].reading.energy_j) if comparable else None,
            "carbon saving vs L0 (%)": saving_pct(a.total_g, base[1].total_g) if comparable else None,
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
