"""What-if replay: serve a window of a zone's hourly carbon-intensity trace with each strategy.

Per hour ``h`` of the window the simulation knows (see :class:`HourlyContext`):

* ``ci[h]`` (g/kWh) from the trace; ``ci_min``/``ci_max``/``ci_mean`` of the zone's whole year;
* the task mix ``weights[h]`` (tasks read the task-mix trace from their own random offsets; weights are
  refreshed about once a day, every ``round(N(24, 4.8))`` h) and the request volume ``volume[h]``
  (requests/h; the trace's job counts summed over tasks, or a fixed number);
* costs under that mix: ``e[h]`` kWh, ``t[h]`` s and ``cost[h] = e·CI + k_emb·t`` g per request per level;
* the hour's *true* q: win shares among ``volume[h]`` prompts sampled (seeded) under the hour's mix from
  the profile's per-task win shares;
* the offline evaluator (:class:`EvaluatorSchedule`): when it runs at hour ``r`` it samples ``n_eval``
  prompts under the mix at ``r``, generates them at every level and has them judged; its q is what the
  LP uses from hour ``r`` on, and its carbon (generation at hour ``r``'s CI; judging only when
  ``judge_kwh_per_prompt`` is given — otherwise n/a and not included) is charged to the strategy.

Strategies live in the :data:`STRATEGIES` registry (name → :class:`StrategySpec`); ``"all"`` means every
registered strategy whose profile supports it. Another module may add one with :func:`register_strategy`.

Metrics per strategy: mean g/request over the window (serving + evaluator, volume-weighted), saving vs
BASE (%), normalised quality (mean over hours of Σ q_true·x / q_true,0, %), mean x, evaluator runs and
their carbon (g). Everything is seeded: the same inputs and seed give the same numbers.
"""
from __future__ import annotations

import datetime as _dt
import math
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from sprout_core import optimizer as opt
from sprout_core.grid import Trace
from sprout_core.profiles import Profile

#: Requests per hour when neither the task-mix trace nor the caller gives a volume.
DEFAULT_REQUESTS_PER_HOUR = 1000.0


# ---------------------------------------------------------------------------------- evaluator schedule

@dataclass(frozen=True)
class ScheduleParams:
    """When the offline evaluator refreshes q (hours; decay per hour)."""

    force_h: int = 72          #: refresh whenever this many hours have passed since the last run
    min_gap_h: int = 6         #: never refresh within this many hours of the last run
    decay_per_h: float = 0.029  #: c(τ) = CI(τ) / exp(−decay · (τ − t_last))
    trailing_h: int = 24       #: hours (past only) in the trailing mean CI(t) is compared with


class EvaluatorSchedule:
    """Streaming evaluator schedule: :meth:`step` gets one hour's CI at a time and can only see the past.

    Rules at hour ``t`` (``t_last`` = the last run, none at first):

    1. ``t − t_last ≥ force_h`` (or no run yet) → refresh (forced);
    2. else ``t − t_last < min_gap_h`` → no refresh;
    3. else refresh iff CI(t) ≤ the mean CI of the previous ``trailing_h`` hours (past only) **and** the
       decay-inflated ``c(τ) = CI(τ)·e^{decay·(τ − t_last)}`` has just passed a local minimum: its change
       ``c(t−1) − c(t−2) ≤ 0`` and ``c(t) − c(t−1) ≥ 0``.

    ``history``: CI values of hours before the first :meth:`step` (for the trailing mean), oldest first.
    """

    def __init__(self, params: ScheduleParams | None = None, history: Iterable[float] = ()):
        self.p = params or ScheduleParams()
        self._k = math.exp(self.p.decay_per_h)  # c(τ)/c(τ−1) = CI(τ)/CI(τ−1) · e^decay
        self._win: deque[float] = deque()       # the last trailing_h CI values (past hours only)
        self._sum = 0.0
        self._prev2 = self._prev1 = None        # CI(t−2), CI(t−1)
        for v in history:
            self._remember(float(v))
        self.t = 0
        self.t_last: int | None = None
        self.runs: list[int] = []
        self.reasons: list[str] = []

    def _remember(self, v: float) -> None:
        if self.p.trailing_h > 0:
            self._win.append(v)
            self._sum += v
            if len(self._win) > self.p.trailing_h:
                self._sum -= self._win.popleft()
        self._prev2, self._prev1 = self._prev1, v

    def step(self, ci_t: float) -> bool:
        """Advance one hour with CI(t) (g/kWh); return True when the evaluator runs at this hour."""
        p, t = self.p, self.t
        ci_t = float(ci_t)
        run, why = False, ""
        if self.t_last is None or t - self.t_last >= p.force_h:
            run, why = True, "forced"
        elif t - self.t_last >= p.min_gap_h and self._prev2 is not None and self._win:
            if ci_t <= self._sum / len(self._win):
                # c(t−1) − c(t−2) ≤ 0 and c(t) − c(t−1) ≥ 0, with c(τ) = CI(τ)·e^{decay·(τ − t_last)};
                # dividing by the positive factor e^{decay·(t−2−t_last)} leaves this exact test:
                k = self._k
                if self._prev1 * k <= self._prev2 and ci_t * k >= self._prev1:
                    run, why = True, "local minimum"
        if run:
            self.t_last = t
            self.runs.append(t)
            self.reasons.append(why)
        self._remember(ci_t)
        self.t += 1
        return run



def _nanmean_pct(values: np.ndarray) -> float:
    """Mean of the finite values × 100, or NaN (no warning) when there are none (quality undefined)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean() * 100.0) if v.size else float("nan")

def evaluator_refreshes(ci: Sequence[float], params: ScheduleParams | None = None,
                        history: Iterable[float] = ()) -> np.ndarray:
    """Refresh mask ``[H]`` for a window — the same decisions as feeding :class:`EvaluatorSchedule` hour by
    hour, computed fast.

    Both refresh conditions at hour t use only CI(t−2), CI(t−1), CI(t) and the ``trailing_h`` hours before
    t, and neither depends on ``t_last`` once the common factor e^{decay·(τ − t_last)} is divided out, so
    they are evaluated for all hours at once (each from past values only); a short loop then walks from
    one run to the next (the first candidate ≥ ``min_gap_h`` after the last run, or the forced hour).
    """
    p = params or ScheduleParams()
    ci = np.asarray(ci, dtype=float)
    H = ci.shape[0]
    mask = np.zeros(H, dtype=bool)
    if H == 0:
        return mask
    hist = np.asarray(list(history), dtype=float)
    full = np.concatenate([hist, ci])
    idx = np.arange(len(hist), len(full))
    if p.trailing_h > 0:
        cs = np.concatenate([[0.0], np.cumsum(full)])
        lo = np.maximum(0, idx - p.trailing_h)
        cnt = idx - lo
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (cs[idx] - cs[lo]) / np.where(cnt > 0, cnt, 1)
        below = (cnt > 0) & (ci <= mean)
    else:
        below = np.zeros(H, dtype=bool)
    k = math.exp(p.decay_per_h)
    ok2 = idx >= 2
    prev1 = np.where(idx >= 1, full[np.maximum(idx - 1, 0)], np.nan)
    prev2 = np.where(ok2, full[np.maximum(idx - 2, 0)], np.nan)
    with np.errstate(invalid="ignore"):
        local_min = ok2 & (prev1 * k <= prev2) & (ci * k >= prev1)
    cand = np.flatnonzero(below & local_min)
    gap = max(1, int(p.min_gap_h))
    t = 0
    while t < H:
        mask[t] = True
        j = int(np.searchsorted(cand, t + gap))
        nxt = int(cand[j]) if j < len(cand) else H + int(p.force_h)
        t = min(nxt, t + max(1, int(p.force_h)))
    return mask


# ---------------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class SimConfig:
    """A replay's settings. Hours count from the first hour of the trace's year (UTC)."""

    start_hour: int = 0
    hours: int = 720
    xi: float = 0.1
    seed: int = 0
    n_eval: int = 500                          #: prompts per evaluator run (each generated at every level)
    requests_per_hour: float | None = None     #: None → from the task-mix trace (sum of job counts)
    judge_kwh_per_prompt: float | None = None  #: None → judge energy unknown: n/a, not included
    schedule: ScheduleParams = field(default_factory=ScheduleParams)
    fixed_mix: tuple[tuple[str, float], ...] | None = None  #: ((task, weight), …) instead of the trace
    solver: str = "exact"                      #: "exact" (vectorised) or "pulp" (one LP per hour)
    mix_interval_mean_h: float = 24.0
    mix_interval_sd_h: float = 4.8


def month_start_hour(year: int, month: int) -> int:
    """Hour of the year (UTC) at which ``month`` starts."""
    return int((_dt.date(year, month, 1) - _dt.date(year, 1, 1)).days * 24)


#: What-if window presets: name → month
WINDOW_PRESETS = {"Feb": 2, "Jun": 6, "Oct": 10}


# ---------------------------------------------------------------------------------- year-level inputs

@dataclass(frozen=True, eq=False)
class YearInputs:
    """Zone-independent per-hour inputs for a whole year (same seed → same arrays)."""

    weights: np.ndarray       # [N, T]
    volume: np.ndarray        # [N] requests/h
    mix_refresh: np.ndarray   # [N] bool: task weights refreshed at this hour
    q_true_task: np.ndarray   # [N, T, L] win shares among the hour's sampled prompts, per task
    q_true: np.ndarray        # [N, L]
    q_eval_task: np.ndarray   # [N, T, L] what an evaluator run at that hour would measure
    q_eval: np.ndarray        # [N, L]


def _task_weights(profile: Profile, n_hours: int, rng: np.random.Generator, cfg: SimConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    T = len(profile.tasks)
    refresh = np.zeros(n_hours, dtype=bool)
    if cfg.fixed_mix is not None:
        w = profile.weights_from(dict(cfg.fixed_mix))
        vol = cfg.requests_per_hour or (float(np.mean(profile.task_trace)) * T if profile.task_trace is not None
                                        else DEFAULT_REQUESTS_PER_HOUR)
        refresh[0] = True
        return np.tile(w, (n_hours, 1)), np.full(n_hours, float(vol)), refresh
    trace = profile.task_trace
    if trace is None or len(trace) == 0:
        vol = cfg.requests_per_hour or DEFAULT_REQUESTS_PER_HOUR
        refresh[0] = True
        return np.tile(profile.default_weights(), (n_hours, 1)), np.full(n_hours, float(vol)), refresh
    offsets = rng.integers(0, len(trace), size=T)
    weights = np.zeros((n_hours, T))
    volume = np.zeros(n_hours)
    h = 0
    while h < n_hours:
        counts = trace[(offsets + h) % len(trace)]
        step = max(1, int(round(rng.normal(cfg.mix_interval_mean_h, cfg.mix_interval_sd_h))))
        weights[h:h + step] = counts / counts.sum()
        volume[h:h + step] = counts.sum()
        refresh[h] = True
        h += step
    if cfg.requests_per_hour:
        volume[:] = float(cfg.requests_per_hour)
    return weights, volume, refresh


def _sample_wins(rng: np.random.Generator, n: np.ndarray, weights: np.ndarray, q_task: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``n[h]`` prompts under ``weights[h]``: per-task win shares ``[N,T,L]`` and pooled ``[N,L]``."""
    n_int = np.maximum(1, np.round(n)).astype(np.int64)
    per_task_n = rng.multinomial(n_int, weights)                    # [N, T]
    wins = rng.multinomial(per_task_n, q_task)                       # [N, T, L] (broadcast over T)
    with np.errstate(invalid="ignore", divide="ignore"):
        share_task = wins / per_task_n[..., None]
    share_task = np.where(per_task_n[..., None] > 0, share_task, q_task[None, :, :])
    pooled = wins.sum(axis=1) / n_int[:, None]
    return share_task, pooled


_YEAR_CACHE: list[tuple[Profile, tuple, YearInputs]] = []
_YEAR_LOCK = threading.Lock()


def year_inputs(profile: Profile, n_hours: int, cfg: SimConfig) -> YearInputs:
    """Seeded, zone-independent inputs for ``n_hours`` hours from the start of a year (cached, 8 entries)."""
    key = (n_hours, cfg.seed, cfg.n_eval, cfg.requests_per_hour, cfg.fixed_mix, cfg.mix_interval_mean_h, cfg.mix_interval_sd_h)
    with _YEAR_LOCK:
        for prof, k, val in _YEAR_CACHE:
            if prof is profile and k == key:
                return val
    ss = np.random.SeedSequence(cfg.seed)
    r_mix, r_true, r_eval = (np.random.default_rng(s) for s in ss.spawn(3))
    weights, volume, refresh = _task_weights(profile, n_hours, r_mix, cfg)
    q_true_task, q_true = _sample_wins(r_true, volume, weights, profile.q)
    q_eval_task, q_eval = _sample_wins(r_eval, np.full(n_hours, float(cfg.n_eval)), weights, profile.q)
    val = YearInputs(weights, volume, refresh, q_true_task, q_true, q_eval_task, q_eval)
    with _YEAR_LOCK:
        _YEAR_CACHE.append((profile, key, val))
        del _YEAR_CACHE[:-8]
    return val


# ---------------------------------------------------------------------------------- hourly context

@dataclass(frozen=True)
class EvaluatorRuns:
    """The offline evaluator over a window: run mask, the q the LP sees each hour, carbon per run (g)."""

    refresh: np.ndarray     # [H] bool
    q_lp: np.ndarray        # [H, L] latest evaluator q (pooled)
    q_lp_task: np.ndarray   # [H, T, L] latest evaluator q per task
    carbon_g: np.ndarray    # [H] g CO₂eq of the run at that hour (0 where no run)
    judge_included: bool

    @property
    def runs(self) -> int:
        return int(self.refresh.sum())

    @property
    def total_g(self) -> float:
        return float(self.carbon_g.sum())


@dataclass
class HourlyContext:
    """Everything a strategy may use, per hour of the window (``[H, …]`` arrays)."""

    profile: Profile
    cfg: SimConfig
    zone: str
    year: int
    hour_of_year: np.ndarray   # [H]
    timestamps: np.ndarray     # [H] datetime64 UTC
    ci: np.ndarray             # [H] g/kWh
    ci_min: float
    ci_max: float
    ci_mean: float
    history_ci: np.ndarray     # CI of hours before the window (for the schedule's trailing mean)
    theta: np.ndarray          # [H] ξ-form floor (fraction of q0)
    weights: np.ndarray        # [H, T]
    volume: np.ndarray         # [H] requests/h
    e: np.ndarray              # [H, L] kWh/request under the hour's mix
    t: np.ndarray              # [H, L] s/request
    operational_g: np.ndarray  # [H, L]
    embodied_g: np.ndarray     # [H, L]
    cost: np.ndarray           # [H, L] g/request
    q_true: np.ndarray         # [H, L]
    q_true_task: np.ndarray    # [H, T, L]
    year_inputs: YearInputs
    _evaluator: EvaluatorRuns | None = None

    @property
    def H(self) -> int:
        return int(self.ci.shape[0])

    @property
    def e_task(self) -> np.ndarray:
        """``[T, L]`` kWh/request per task (the profile's)."""
        return self.profile.e_kwh

    @property
    def t_task(self) -> np.ndarray:
        return self.profile.t_s

    def cost_task(self) -> np.ndarray:
        """``[H, T, L]`` g/request per task and level at each hour's CI."""
        return self.profile.e_kwh[None] * self.ci[:, None, None] + self.profile.k_emb * self.profile.t_s[None]

    def evaluator(self) -> EvaluatorRuns:
        """The offline evaluator's runs over this window (computed once, shared by the strategies using it)."""
        if self._evaluator is None:
            refresh = evaluator_refreshes(self.ci, self.cfg.schedule, self.history_ci)
            idx = np.maximum.accumulate(np.where(refresh, np.arange(self.H), 0))
            abs_idx = self.hour_of_year[idx]
            yi = self.year_inputs
            n = float(self.cfg.n_eval)
            gen_g = n * self.cost.sum(axis=1)
            judge = self.cfg.judge_kwh_per_prompt
            judge_g = n * float(judge) * self.ci if judge is not None else 0.0
            carbon = np.where(refresh, gen_g + judge_g, 0.0)
            self._evaluator = EvaluatorRuns(refresh, yi.q_eval[abs_idx], yi.q_eval_task[abs_idx], carbon, judge is not None)
        return self._evaluator

    def solve(self, cost: np.ndarray, q: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """``x [H, L]`` for the hourly LP with the configured solver."""
        x, feas = opt.solve_hours(cost, q, theta, solver=self.cfg.solver)
        if not feas.all():  # cannot happen for θ ≤ 1; fall back to always-L0 rather than NaN
            x[~feas] = np.eye(cost.shape[1])[0]
        return x


def build_context(profile: Profile, trace: Trace, cfg: SimConfig) -> HourlyContext:
    """Slice the year inputs and the trace to the window ``cfg.start_hour … + cfg.hours``."""
    N = len(trace)
    if not 0 <= cfg.start_hour < N:
        raise ValueError(f"start hour {cfg.start_hour} is outside the year (0 … {N - 1} for {trace.zone} {trace.year})")
    if cfg.hours < 1:
        raise ValueError("the window needs at least 1 hour")
    if not 0 <= cfg.xi <= 1:
        raise ValueError(f"ξ must be between 0 and 1, got {cfg.xi}")
    s, e_ = cfg.start_hour, min(N, cfg.start_hour + cfg.hours)
    yi = year_inputs(profile, N, cfg)
    sl = slice(s, e_)
    ci = np.asarray(trace.ci[sl], dtype=float)
    w = yi.weights[sl]
    e, t, _ = profile.under_mix(w)
    op = e * ci[:, None]
    emb = profile.k_emb * t
    theta = opt.theta_from_xi(ci, trace.min(), trace.max(), cfg.xi)
    hist_from = max(0, s - max(cfg.schedule.trailing_h, 2))
    return HourlyContext(
        profile=profile, cfg=cfg, zone=trace.zone, year=trace.year, hour_of_year=np.arange(s, e_),
        timestamps=trace.timestamps[sl], ci=ci, ci_min=trace.min(), ci_max=trace.max(), ci_mean=trace.mean(),
        history_ci=np.asarray(trace.ci[hist_from:s], dtype=float), theta=np.atleast_1d(theta), weights=w,
        volume=yi.volume[sl], e=e, t=t, operational_g=op, embodied_g=emb, cost=op + emb,
        q_true=yi.q_true[sl], q_true_task=yi.q_true_task[sl], year_inputs=yi,
    )


# ---------------------------------------------------------------------------------- strategies

@dataclass
class StrategyOutput:
    """What a strategy returns: its levels, ``x [H, L]``, cost ``[H, L]`` g/request and quality ``[H]``
    (fraction of its baseline level's quality); ``uses_evaluator`` charges the evaluator's runs."""

    levels: tuple[str, ...]
    x: np.ndarray
    cost: np.ndarray
    quality: np.ndarray
    uses_evaluator: bool = False
    note: str = ""


@dataclass(frozen=True)
class StrategySpec:
    name: str
    fn: Callable[[HourlyContext], StrategyOutput]
    description: str
    available: Callable[[Profile], bool] = lambda p: True


#: The strategy registry, in display order. Add with :func:`register_strategy`.
STRATEGIES: dict[str, StrategySpec] = {}


def register_strategy(name: str, description: str, available: Callable[[Profile], bool] | None = None):
    """Decorator: register ``fn(ctx) -> StrategyOutput`` under ``name`` (replaces an existing one)."""
    def deco(fn):
        STRATEGIES[name] = StrategySpec(name, fn, description, available or (lambda p: True))
        return fn
    return deco


def _norm_quality(q: np.ndarray, x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(q[:, 0] > 0, (q * x).sum(axis=1) / q[:, 0], np.nan)


@register_strategy("BASE", "always L0 (no directive)")
def _base(ctx: HourlyContext) -> StrategyOutput:
    L = ctx.cost.shape[1]
    x = np.zeros((ctx.H, L))
    x[:, 0] = 1.0
    return StrategyOutput(ctx.profile.levels, x, ctx.cost, _norm_quality(ctx.q_true, x))


@register_strategy("CO2-OPT", "the single cheapest level each hour, no quality constraint")
def _co2opt(ctx: HourlyContext) -> StrategyOutput:
    L = ctx.cost.shape[1]
    x = np.eye(L)[np.argmin(ctx.cost, axis=1)]
    return StrategyOutput(ctx.profile.levels, x, ctx.cost, _norm_quality(ctx.q_true, x))


@register_strategy("STATIC", "one mix, solved once at the zone's yearly mean CI with window-average costs and q")
def _static(ctx: HourlyContext) -> StrategyOutput:
    e_bar, t_bar, q_bar = ctx.e.mean(axis=0), ctx.t.mean(axis=0), ctx.q_true.mean(axis=0)
    c_bar = e_bar * ctx.ci_mean + ctx.profile.k_emb * t_bar
    th = opt.theta_from_xi(ctx.ci_mean, ctx.ci_min, ctx.ci_max, ctx.cfg.xi)
    x1 = ctx.solve(c_bar[None], q_bar[None], np.array([th]))[0]
    x = np.tile(x1, (ctx.H, 1))
    return StrategyOutput(ctx.profile.levels, x, ctx.cost, _norm_quality(ctx.q_true, x))


@register_strategy("SPROUT", "the hourly LP with q from the carbon-aware offline evaluator")
def _sprout(ctx: HourlyContext) -> StrategyOutput:
    ev = ctx.evaluator()
    x = ctx.solve(ctx.cost, ev.q_lp, ctx.theta)
    return StrategyOutput(ctx.profile.levels, x, ctx.cost, _norm_quality(ctx.q_true, x), uses_evaluator=True)


def oracle_quality(x: np.ndarray, cost: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Normalised quality when the cheaper of the (≤ 2) active levels goes to the requests that lose least.

    Requests whose best level is the cheaper level ``b`` get it first, then requests whose best level is
    neither active level, then those whose best is the dearer level ``a``. The share served at its best
    level is ``min(x_b, q_b) + q_a − max(0, x_b − (1 − q_a))``; divided by ``q_0``.
    """
    H, L = x.shape
    active = x > 1e-12
    big = np.where(active, cost, np.inf)
    b = np.argmin(big, axis=1)
    big2 = big.copy()
    big2[np.arange(H), b] = -np.inf
    a = np.where(active.sum(axis=1) >= 2, np.argmax(np.where(active, big2, -np.inf), axis=1), b)
    r = np.arange(H)
    xb, qb, qa = x[r, b], q[r, b], q[r, a]
    served = np.where(a == b, qa, np.minimum(xb, qb) + qa - np.maximum(0.0, xb - (1.0 - qa)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(q[:, 0] > 0, served / q[:, 0], np.nan)


@register_strategy("ORACLE", "the hourly LP on the hour's true q; the cheaper active level goes to the requests that lose least")
def _oracle(ctx: HourlyContext) -> StrategyOutput:
    x = ctx.solve(ctx.cost, ctx.q_true, ctx.theta)
    return StrategyOutput(ctx.profile.levels, x, ctx.cost, oracle_quality(x, ctx.cost, ctx.q_true))


@register_strategy("MODEL-OPT", "the hourly LP over the model variants (e.g. 13B vs 7B) without directives",
                   available=lambda p: p.variant is not None)
def _model_opt(ctx: HourlyContext) -> StrategyOutput:
    v = ctx.profile.variant
    e, t, q = v.under_mix(ctx.weights)
    cost = e * ctx.ci[:, None] + v.k_emb * t
    x = ctx.solve(cost, q, ctx.theta)
    return StrategyOutput(v.levels, x, cost, _norm_quality(q, x), note=v.notes[0] if v.notes else "")


def resolve_strategies(names: str | Sequence[str] | None, profile: Profile) -> list[str]:
    """``"all"``/None → every registered strategy the profile supports; else validate the names given."""
    if names is None or names == "all" or (not isinstance(names, str) and list(names) == ["all"]):
        return [n for n, s in STRATEGIES.items() if s.available(profile)]
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out = []
    for n in names:
        key = n.upper()
        if key not in STRATEGIES:
            raise ValueError(f"unknown strategy {n!r}; choose from {list(STRATEGIES)} or 'all'")
        if not STRATEGIES[key].available(profile):
            raise ValueError(f"strategy {key} needs a model variant this profile ({profile.name}) does not have")
        out.append(key)
    if "BASE" not in out:
        out.insert(0, "BASE")  # savings are measured against BASE
    return out


# ---------------------------------------------------------------------------------- results

@dataclass
class StrategyResult:
    """One strategy over one window. Carbon in g CO₂eq per request (``method`` labels the energies)."""

    name: str
    levels: tuple[str, ...]
    x: np.ndarray                 # [H, L]
    serving_g_h: np.ndarray       # [H] g/request served that hour (no evaluator)
    quality_h: np.ndarray         # [H] fraction of baseline
    carbon_g_per_request: float   # incl. evaluator
    serving_g_per_request: float
    carbon_saving_pct: float
    quality_pct: float
    mean_x: dict[str, float]
    evaluator_runs: int
    evaluator_carbon_g: float
    refresh_hours: np.ndarray     # window indices of evaluator runs
    method: str
    note: str = ""

    def as_json(self) -> dict:
        return {"carbon_g_per_request": self.carbon_g_per_request, "carbon_saving_pct": self.carbon_saving_pct,
                "quality_pct": self.quality_pct, "mean_x": self.mean_x, "evaluator_runs": self.evaluator_runs,
                "evaluator_carbon_g": self.evaluator_carbon_g, "method": self.method}


@dataclass
class SimResult:
    """All strategies over one zone-window."""

    zone: str
    year: int
    cfg: SimConfig
    profile_label: str
    method: str
    timestamps: np.ndarray
    ci: np.ndarray
    ci_min: float
    ci_max: float
    judge_included: bool
    results: dict[str, StrategyResult]
    total_requests: float

    def table(self) -> pd.DataFrame:
        rows = []
        for r in self.results.values():
            rows.append({"zone": self.zone, "year": self.year, "start_hour": self.cfg.start_hour,
                         "hours": len(self.ci), "xi": self.cfg.xi, "strategy": r.name,
                         "carbon_g_per_request": r.carbon_g_per_request, "carbon_saving_pct": r.carbon_saving_pct,
                         "quality_pct": r.quality_pct,
                         "mean_x": ", ".join(f"{k} {v:.2f}" for k, v in r.mean_x.items()),
                         "evaluator_runs": r.evaluator_runs, "evaluator_carbon_g": r.evaluator_carbon_g,
                         "method": r.method})
        return pd.DataFrame(rows)


def simulate(profile: Profile, trace: Trace, cfg: SimConfig | None = None,
             strategies: str | Sequence[str] | None = "all") -> SimResult:
    """Replay one window of ``trace`` with each strategy (see the module docstring)."""
    cfg = cfg or SimConfig()
    ctx = build_context(profile, trace, cfg)
    names = resolve_strategies(strategies, profile)
    vol = ctx.volume
    total_req = float(vol.sum())
    outs = {n: STRATEGIES[n].fn(ctx) for n in names}
    results: dict[str, StrategyResult] = {}
    base_g = None
    for n in names:
        o = outs[n]
        serving_h = (o.x * o.cost).sum(axis=1)
        serving = float((serving_h * vol).sum() / total_req)
        runs, ev_g, ref = 0, 0.0, np.zeros(0, dtype=int)
        if o.uses_evaluator:
            ev = ctx.evaluator()
            runs, ev_g, ref = ev.runs, ev.total_g, np.flatnonzero(ev.refresh)
        total = serving + ev_g / total_req
        if n == "BASE":
            base_g = total
        results[n] = StrategyResult(
            name=n, levels=o.levels, x=o.x, serving_g_h=serving_h, quality_h=o.quality,
            carbon_g_per_request=total, serving_g_per_request=serving, carbon_saving_pct=float("nan"),
            quality_pct=_nanmean_pct(o.quality),
            mean_x={lv: float(v) for lv, v in zip(o.levels, o.x.mean(axis=0))},
            evaluator_runs=runs, evaluator_carbon_g=ev_g, refresh_hours=ref, method=profile.method, note=o.note)
    for r in results.values():
        r.carbon_saving_pct = float(100.0 * (1.0 - r.carbon_g_per_request / base_g)) if base_g else float("nan")
    ev = ctx._evaluator
    return SimResult(zone=trace.zone, year=trace.year, cfg=cfg, profile_label=profile.label, method=profile.method,
                     timestamps=ctx.timestamps, ci=ctx.ci, ci_min=ctx.ci_min, ci_max=ctx.ci_max,
                     judge_included=bool(ev.judge_included) if ev is not None else cfg.judge_kwh_per_prompt is not None,
                     results=results, total_requests=total_req)


def run_matrix(profile: Profile, traces: Sequence[Trace], windows: Sequence[tuple[str, int, int]], cfg: SimConfig,
               strategies: str | Sequence[str] | None = "all",
               progress: Callable[[int, int, str], None] | None = None) -> pd.DataFrame:
    """Simulate every trace × window (``(label, start_hour, hours)``); one row per zone-window-strategy.

    ``progress(done, total, what)`` is called after each zone-window.
    """
    frames = []
    total = len(traces) * len(windows)
    done = 0
    for tr in traces:
        for label, start, hours in windows:
            c = SimConfig(**{**cfg.__dict__, "start_hour": int(start), "hours": int(hours)})
            res = simulate(profile, tr, c, strategies)
            df = res.table()
            df.insert(2, "window", label)
            frames.append(df)
            done += 1
            if progress:
                progress(done, total, f"{tr.zone} {label}")
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def xi_sweep(profile: Profile, trace: Trace, cfg: SimConfig, xis: Sequence[float],
             strategies: Sequence[str] = ("SPROUT", "ORACLE", "STATIC"),
             progress: Callable[[int, int, str], None] | None = None) -> pd.DataFrame:
    """Savings and quality for each ξ (rows: xi, strategy, carbon_saving_pct, quality_pct)."""
    rows = []
    for i, xi in enumerate(xis):
        c = SimConfig(**{**cfg.__dict__, "xi": float(xi)})
        res = simulate(profile, trace, c, list(strategies))
        for n in strategies:
            r = res.results[n]
            rows.append({"xi": float(xi), "strategy": n, "carbon_saving_pct": r.carbon_saving_pct, "quality_pct": r.quality_pct})
        if progress:
            progress(i + 1, len(xis), f"ξ = {xi:.2f}")
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------- SPROUT-TASK (issue 6)
# The task-aware strategy lives in sprout_core.tasks.sim and registers itself here, so "all" includes it
# (when the task classifier is trained: see sprout_core.tasks.sim.available).
def _register_task_strategy() -> None:
    import sys

    from sprout_core.tasks import sim as _task_sim

    _task_sim.register(sys.modules[__name__])


_register_task_strategy()
