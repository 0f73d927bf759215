"""What-if replay: serve a window of a zone's hourly carbon-intensity trace with each strategy.

Per hour ``h`` of the window the replay knows (see :class:`HourlyContext`):

* ``ci[h]`` (g/kWh) from the trace; ``ci_min``/``ci_max``/``ci_mean`` of the zone's whole year, and the
  hour's floor ``θ_h = 1 − ξ·(CI − CI_min)/(CI_max − CI_min)`` (:func:`sprout_core.optimizer.theta_from_xi`);
* the workload (:mod:`sprout_core.workload`): task mix, volume, the hour's actual requests — their true
  win shares ``q_true`` and realised energy/time per level — and what an evaluator run would measure;
* the costs the optimizer plans with (``cost_lp``: the profile's per-task means under the hour's mix) and
  the cost of the hour's actual requests (``cost``), both ``e·CI·PUE + k_emb·t`` g/request
  (:func:`sprout_core.carbon.grams_per_request` through :func:`sprout_core.optimizer.cost_per_request`;
  ``SimConfig.pue``, default 1.0, paper mode 1);
* the offline evaluator (:mod:`sprout_core.schedule`): from a run at hour ``r`` on, the optimizer uses that
  run's per-task verdicts, re-weighted to each hour's mix, and their uncertainty
  (:mod:`sprout_core.quality`); its carbon (generating its prompts at every level at hour ``r``'s CI; the
  judge only when ``judge_kwh_per_prompt`` is given — otherwise n/a and not included) is charged to the
  strategies that use it.

Strategies live in :mod:`sprout_core.strategies`. Metrics per strategy: g/request over the window
(serving + evaluator; a mean over requests, or over hours in paper mode), saving vs BASE (%), quality
(mean realised quality, % of always-L0), the share of hours whose realised quality met that hour's floor,
the 5th percentile and the worst hour, quality per task, mean x, evaluator runs and their carbon.

**Paper mode** (:meth:`SimConfig.paper_faithful`, ``simulate --paper-faithful``) reproduces the authors'
simulator (``boringlee24/EMNLP24_Sprout``, ``sprout/system``): their task-mix walk and random stream, their
evaluator test (window mean, gap > 6 h), 1,000 prompts per evaluator run that are the hour's own true
sample, pooled (not re-weighted) q, the plug-in LP (confidence 0.5), evaluator carbon not charged, plain
hourly means, costs over prompts < 5000, and their ORACLE. ``docs/optimizer.md`` lists every difference
from the default mode with its measured effect.

Everything is seeded: the same inputs and seed give the same numbers.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from sprout_core import optimizer as opt
from sprout_core import quality as qmod
from sprout_core import validate
from sprout_core.carbon import grams_per_request, saving_pct
from sprout_core.errors import InputError
from sprout_core.grid import Trace
from sprout_core.profiles import Profile
from sprout_core.schedule import PAPER_SCHEDULE, EvaluatorSchedule, ScheduleParams, evaluator_refreshes
from sprout_core.strategies import STRATEGIES, StrategyOutput, register_strategy, resolve_strategies
from sprout_core.workload import DEFAULT_REQUESTS_PER_HOUR, Requests, Workload, WorkloadSpec, year_workload

__all__ = [
    "DEFAULT_CONFIDENCE", "DEFAULT_REQUESTS_PER_HOUR", "PAPER_WINDOWS", "PAPER_ZONES", "PAPER_STARTS",
    "EvaluatorRuns", "EvaluatorSchedule", "HourlyContext", "STRATEGIES", "ScheduleParams", "SimConfig", "SimResult",
    "StrategyOutput", "StrategyResult", "WINDOW_PRESETS", "build_context", "confidence_sweep", "evaluator_refreshes",
    "month_start_hour", "register_strategy", "resolve_strategies", "run_matrix", "simulate", "xi_sweep",
]

#: The default confidence of the quality promise: an hour keeps its floor with probability 0.9.
DEFAULT_CONFIDENCE = 0.9
#: The Sprout paper's 15 zone-windows: five zones × 720 h from hours 800, 3900 and 7000 of 2023.
PAPER_ZONES = ("US-TEX-ERCO", "US-CAL-CISO", "AU-SA", "NL", "GB")
PAPER_STARTS = (800, 3900, 7000)
PAPER_WINDOWS = tuple((z, s) for z in PAPER_ZONES for s in PAPER_STARTS)
#: The paper's published means over those 15 windows (saving %, quality % of always-L0), ξ = 0.1.
PAPER_PUBLISHED = {"SPROUT": (51.4, 94.1), "STATIC": (39.5, 96.3), "CO2-OPT": (85.9, 71.1)}

WEIGHTINGS = ("requests", "hours")
STATIC_CIS = ("year", "previous-window", "paper")
FLOORS = ("per-task", "pooled")
ASSIGNMENTS = ("per-request", "expected")
STRESSES = ("none", "held-out")
ORACLES = ("per-request", "paper")


# ---------------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class SimConfig:
    """A replay's settings. Hours count from the first hour of the trace's year (UTC).

    ``confidence``: the probability with which each hour's realised quality must meet its floor (0.5 = the
    plug-in estimate, the paper's behaviour). The fields after ``per_task_floor`` choose semantics; their
    defaults are this project's, :meth:`paper_faithful` sets the authors'.
    """

    start_hour: int = 0
    hours: int = 720
    xi: float = 0.1
    seed: int = 0
    confidence: float = DEFAULT_CONFIDENCE
    n_eval: int = 500                          #: prompts per evaluator run (each generated at every level)
    requests_per_hour: float | None = None     #: None → from the task-mix trace (sum of job counts)
    judge_kwh_per_prompt: float | None = None  #: None → judge energy unknown: n/a, not included
    pue: float = 1.0                           #: data-centre PUE (≥ 1): scales operational carbon only (paper: 1)
    schedule: ScheduleParams = field(default_factory=ScheduleParams)
    fixed_mix: tuple[tuple[str, float], ...] | None = None  #: ((task, weight), …) instead of the trace
    solver: str = "exact"                      #: "exact" (vectorised) or "pulp" (one LP per hour, c = 0.5 only)
    mix_interval_mean_h: float = 24.0
    mix_interval_sd_h: float = 4.8
    per_task_floor: bool = True                #: every task keeps θ of its own always-L0 quality (default; paper: pooled)
    assignment: str = "per-request"            #: each request draws its level from the hour's mix (sprout_core.assign)
                                               #: and is credited if it is its best; "expected": credited Σ x·q (paper)
    stress: str = "none"                       #: "held-out": the evaluator judges one half of each task's judged
                                               #: prompts, the users send the other (partition seed // 2, seed % 2 swaps)
    evaluator_memory_h: int = 168              #: pool the verdicts of runs within this many hours (0 = latest run only)
    # --- semantics (default: this project's; paper_faithful(): the authors')
    paper: bool = False
    mix_model: str = "trace-hour"              #: how the task-mix trace is walked ("trace-hour" | "paper")
    paper_requests: bool = False               #: hour's truth: 1,000 judged prompts w/o replacement (paper)
    evaluator_is_hour_sample: bool = False     #: an evaluator run judges the hour's own true sample (paper)
    reweight: bool = True                      #: re-weight per-task verdicts to the hour's mix (paper: pooled)
    charge_evaluator: bool = True              #: charge the evaluator's carbon to the strategies using it
    weighting: str = "requests"                #: means over requests ("requests") or plain hourly ("hours")
    paper_costs: bool = False                  #: costs: per-task means over prompts < 5000 (the authors')
    oracle: str = "per-request"                #: "per-request" (exact bound) or "paper" (the authors')
    static_ci: str = "year"                    #: STATIC's CI: the year's mean ("year"), the previous window's, or
                                               #: "paper": a Feb window at the year's mean, later ones at the previous
                                               #: window's (what the authors' published files show)
    sample_seed: int | None = None             #: seeds the sampled prompts apart from the task mix (None = seed)
    mix_seed: int | None = None                #: seeds the task-mix draw apart from the samples (None = seed;
                                               #: paper mode: 0, the authors' own draw behind their figures)

    def __post_init__(self) -> None:
        _check_config(self)

    @classmethod
    def paper_faithful(cls, **overrides) -> "SimConfig":
        """The authors' semantics (see the module docstring); ``overrides`` change single fields."""
        base = dict(paper=True, confidence=0.5, n_eval=1000, evaluator_memory_h=0, schedule=PAPER_SCHEDULE, mix_model="paper",
                    mix_seed=0,
                    paper_requests=True, evaluator_is_hour_sample=True, reweight=False, charge_evaluator=False,
                    weighting="hours", paper_costs=True, oracle="paper", static_ci="paper", per_task_floor=False,
                    assignment="expected", stress="none")
        base.update(overrides)
        return cls(**base)

    @property
    def floor(self) -> str:
        """``"per-task"`` (every task keeps θ of its own always-L0 quality) or ``"pooled"``."""
        return "per-task" if self.per_task_floor else "pooled"

    @property
    def quality(self) -> str:
        """What realised quality credits: ``"raw"`` (the judge's one winner per prompt; the
        length-controlled credits of :mod:`sprout_core.evaluate.shares` are not wired into the replay yet)."""
        return "raw"

    def window_json(self) -> dict:
        """The semantics a replay ran with, for the JSON ``_window``."""
        return {"floor": self.floor, "quality": self.quality, "assignment": self.assignment, "stress": self.stress}

    def with_(self, **changes) -> "SimConfig":
        return replace(self, **changes)

    def workload_spec(self) -> WorkloadSpec:
        mix = self.seed if self.mix_seed is None else self.mix_seed
        samples = self.sample_seed if self.sample_seed is not None else (self.seed if self.mix_seed is not None else None)
        return WorkloadSpec(seed=mix, n_eval=self.n_eval, requests_per_hour=self.requests_per_hour,
                            fixed_mix=self.fixed_mix, mix_interval_mean_h=self.mix_interval_mean_h,
                            mix_interval_sd_h=self.mix_interval_sd_h, mix_model=self.mix_model,
                            paper_requests=self.paper_requests, evaluator_is_hour_sample=self.evaluator_is_hour_sample,
                            paper_costs=self.paper_costs, window_hours=self.hours, sample_seed=samples,
                            per_request=self.assignment == "per-request" and not self.paper_requests,
                            assign_seed=self.seed,
                            stress_split=(self.seed // 2, self.seed % 2) if self.stress == "held-out" else None)


def _check_config(c: SimConfig) -> None:
    """Validate every setting before any work (messages a user can act on)."""
    for name in ("start_hour", "hours", "seed", "n_eval"):
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise InputError(f"{name.replace('_', ' ')} must be a whole number, got {v!r}")
    if c.start_hour < 0:
        raise InputError(f"start hour must be ≥ 0, got {c.start_hour}")
    if c.hours < 1:
        raise InputError(f"the window needs at least 1 hour, got {c.hours}")
    if c.seed < 0:
        raise InputError(f"seed must be ≥ 0, got {c.seed}")
    if c.n_eval < 1:
        raise InputError(f"prompts per evaluator run must be ≥ 1, got {c.n_eval}")
    validate.number("ξ", c.xi, 0.0, 1.0)
    opt.z_value(c.confidence)
    if c.requests_per_hour is not None:
        validate.number("requests per hour", c.requests_per_hour, 0.0, 1e9, lo_open=True)
    if c.judge_kwh_per_prompt is not None:
        validate.number("judge energy per prompt", c.judge_kwh_per_prompt, 0.0, 1.0, unit="kWh")
    validate.number("PUE", c.pue, *validate.PUE_RANGE)
    if c.paper and c.pue != 1.0:
        raise InputError(f"paper mode keeps PUE 1 (the authors' simulator has none), got PUE {c.pue:g}")
    validate.number("mix interval mean", c.mix_interval_mean_h, 0.0, 10_000.0, lo_open=True, unit="h")
    validate.number("mix interval sd", c.mix_interval_sd_h, 0.0, 10_000.0, unit="h")
    if c.solver not in ("exact", "pulp"):
        raise InputError(f"solver must be 'exact' or 'pulp', not {c.solver!r}")
    if c.weighting not in WEIGHTINGS:
        raise InputError(f"weighting must be one of {WEIGHTINGS}, not {c.weighting!r}")
    if c.oracle not in ORACLES:
        raise InputError(f"oracle must be one of {ORACLES}, not {c.oracle!r}")
    if isinstance(c.evaluator_memory_h, bool) or not isinstance(c.evaluator_memory_h, (int, np.integer)) \
            or not 0 <= c.evaluator_memory_h <= 100_000:
        raise InputError(f"evaluator memory must be a whole number of hours ≥ 0, got {c.evaluator_memory_h!r}")
    for name, allowed in (("assignment", ASSIGNMENTS), ("stress", STRESSES)):
        if getattr(c, name) not in allowed:
            raise InputError(f"{name} must be one of {allowed}, not {getattr(c, name)!r}")
    if c.stress == "held-out" and c.paper_requests:
        raise InputError("--stress held-out needs the default mode's requests (paper mode samples the hour's own "
                         "judged prompts)")
    if c.static_ci not in STATIC_CIS:
        raise InputError(f"static_ci must be one of {STATIC_CIS}, not {c.static_ci!r}")
    for name in ("sample_seed", "mix_seed"):
        v = getattr(c, name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0):
            raise InputError(f"{name.replace('_', ' ')} must be a whole number ≥ 0, got {v!r}")


def month_start_hour(year: int, month: int) -> int:
    """Hour of the year (UTC) at which ``month`` starts."""
    return int((_dt.date(year, month, 1) - _dt.date(year, 1, 1)).days * 24)


#: What-if window presets: name → month
WINDOW_PRESETS = {"Feb": 2, "Jun": 6, "Oct": 10}


# ---------------------------------------------------------------------------------- hourly context

@dataclass(frozen=True)
class EvaluatorRuns:
    """The offline evaluator over a window: its run hours, the q the optimizer sees each hour (the latest
    run's pooled and per-task verdict shares, and verdicts per task), and the carbon of each run (g)."""

    refresh: np.ndarray     # [H] bool
    run_at: np.ndarray      # [H] window index of the latest run
    q_lp: np.ndarray        # [H, L] latest run's pooled win shares
    q_lp_task: np.ndarray   # [H, T, L] latest run's per-task win shares
    n_task: np.ndarray      # [H, T] latest run's verdicts per task
    carbon_g: np.ndarray    # [H] g CO₂e of the run at that hour (0 where no run)
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
    ci_mean: float             # STATIC's CI: the year's mean, or the previous window's (paper)
    history_ci: np.ndarray     # CI of hours before the window (for the schedule's trailing mean)
    theta: np.ndarray          # [H] ξ-form floor (fraction of q0)
    weights: np.ndarray        # [H, T]
    volume: np.ndarray         # [H] requests/h
    e_lp: np.ndarray           # [H, L] kWh/request the optimizer plans with (profile means under the mix)
    t_lp: np.ndarray           # [H, L] s/request
    cost_lp: np.ndarray        # [H, L] g/request the optimizer plans with
    e: np.ndarray              # [H, L] kWh/request of the hour's actual requests
    t: np.ndarray              # [H, L] s/request
    operational_g: np.ndarray  # [H, L]
    embodied_g: np.ndarray     # [H, L]
    cost: np.ndarray           # [H, L] g/request of the hour's actual requests
    q_true: np.ndarray         # [H, L]
    q_true_task: np.ndarray    # [H, T, L]
    n_true_task: np.ndarray    # [H, T]
    workload: Workload
    requests: Requests         # the window's actual requests (rows for per-request strategies)
    wl_index: np.ndarray       # [H] the window's hours in the workload arrays (window-relative in paper mix mode)
    z: float                   # Φ⁻¹(confidence)
    _evaluator: EvaluatorRuns | None = None
    _seg_keys: np.ndarray | None = None

    @property
    def measured(self) -> np.ndarray:
        """``[H]`` the hour's requests its realised quality counts (all of them; see :mod:`workload`)."""
        return self.n_true_task.sum(axis=1)

    @property
    def H(self) -> int:
        return int(self.ci.shape[0])

    @property
    def window(self) -> slice:
        """The window's hours in the workload arrays."""
        return slice(int(self.wl_index[0]), int(self.wl_index[-1]) + 1)

    def cost_task(self) -> np.ndarray:
        """``[H, T, L]`` g/request per task and level at each hour's CI (the profile's per-task means)."""
        e, t = (self.profile.paper_costs if self.cfg.paper_costs and self.profile.paper_costs is not None
                else (self.profile.e_kwh, self.profile.t_s))
        return opt.cost_per_request(e[None], t[None], self.ci[:, None, None], self.profile.k_emb, self.cfg.pue)

    def _keys(self) -> np.ndarray | None:
        """Sorted ``(hour, task, winner) + u`` keys of the window's requests (per-request assignment)."""
        if self._seg_keys is None and self.requests.u_r is not None:
            r = self.requests
            T, L = self.q_true_task.shape[1:]
            hour_of = np.repeat(np.arange(self.H), np.diff(r.req_offsets))
            seg = (hour_of * T + r.task_r.astype(np.int64)) * L + r.winner_r.astype(np.int64)
            self._seg_keys = seg + r.u_r
        return self._seg_keys

    @property
    def pool_n(self) -> np.ndarray:
        """``[T]`` judged prompts per task the evaluator draws from (its half under the held-out stress)."""
        from sprout_core.workload import pool_sizes

        return pool_sizes(self.profile, self.workload.spec.stress_split)

    def per_request(self) -> bool:
        """True when realised quality counts per-request level draws (``cfg.assignment``)."""
        return self.cfg.assignment == "per-request" and self.requests.u_r is not None

    def realised(self, mix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(quality [H], quality_task [H, T])`` realised by serving ``mix``: one mix per hour ``[H, L]`` or
        one per hour, task and best level ``[H, T, L, L]`` (SPROUT-TASK: what a request of task t whose best
        level is w is served, through the classifier's predictions), as fractions of always-L0's quality on
        the same requests.

        Per-request assignment (default): request k of hour h is served at
        ``assign.pick_level(mix, u_k)`` with ``u_k`` the k-th draw of ``assign.level_stream(seed, hour)`` and
        credited 1 if that level is its best (the judge's winner) — exactly what :func:`sprout_core.assign.assign_hour`
        gives, counted by segments instead of request by request. ``assignment="expected"``: credited ``Σ x·q``."""
        H, T, L = self.q_true_task.shape
        m = np.asarray(mix, dtype=float)
        if m.ndim == 2:
            m = np.broadcast_to(m[:, None, None, :], (H, T, L, L))
        if not self.per_request():
            won = np.einsum("htw,htww->ht", self.q_true_task, m) * self.n_true_task
            base = self.q_true_task[..., 0] * self.n_true_task
        else:
            keys = self._keys()
            tot = np.maximum(m.sum(axis=-1, keepdims=True), 1e-300)
            cum = np.cumsum(m / tot, axis=-1)
            cum[..., -1] = 1.0
            w = np.arange(L)
            hi = np.take_along_axis(cum, w[None, None, :, None], axis=-1)[..., 0]             # [H, T, W]
            lo = np.where(w > 0, np.take_along_axis(cum, np.maximum(w - 1, 0)[None, None, :, None], axis=-1)[..., 0], 0.0)
            seg = ((np.arange(H)[:, None, None] * T + np.arange(T)[None, :, None]) * L + w[None, None, :]).astype(float)
            hits = np.searchsorted(keys, seg + hi) - np.searchsorted(keys, seg + lo)
            n_seg = np.searchsorted(keys, seg + 1.0) - np.searchsorted(keys, seg)
            won = hits.sum(axis=2).astype(float)
            base = n_seg[..., 0].astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            q_task = np.where(base > 0, won / base, np.nan)
            bs = base.sum(axis=1)
            q = np.where(bs > 0, won.sum(axis=1) / bs, np.nan)
        return q, q_task

    def evaluator(self) -> EvaluatorRuns:
        """The offline evaluator's runs over this window (computed once, shared by the strategies using it)."""
        if self._evaluator is None:
            refresh = evaluator_refreshes(self.ci, self.cfg.schedule, self.history_ci)
            run_at = np.maximum.accumulate(np.where(refresh, np.arange(self.H), 0))
            wl = self.workload
            if self.cfg.evaluator_is_hour_sample:   # the authors: the run judges the hour's own true sample
                q_run, qt_run, nt_run = self.q_true, self.q_true_task, self.n_true_task
            else:
                ix = self.wl_index
                q_run, qt_run, nt_run = wl.q_eval[ix], wl.q_eval_task[ix], wl.n_eval_task[ix].astype(float)
            q, qt, nt = q_run[run_at], qt_run[run_at], nt_run[run_at]
            mem = int(self.cfg.evaluator_memory_h)
            if mem > 0:   # pool the verdicts of every run within the memory (always including the latest)
                wins = np.where(refresh[:, None, None], qt_run * nt_run[..., None], 0.0)
                cnt = np.where(refresh[:, None], nt_run, 0.0)
                cw, cn = np.cumsum(wins, axis=0), np.cumsum(cnt, axis=0)
                lo = np.minimum(np.arange(self.H) - mem, run_at - 1)
                ok = lo >= 0
                lo_c = np.maximum(lo, 0)
                pw = cw - np.where(ok[:, None, None], cw[lo_c], 0.0)
                pn = cn - np.where(ok[:, None], cn[lo_c], 0.0)
                qt = np.where(pn[..., None] > 0, pw / np.maximum(pn, 1e-300)[..., None], qt)
                nt = pn
                q = pw.sum(axis=1) / np.maximum(pn.sum(axis=1), 1e-300)[:, None]
            n = float(self.cfg.n_eval)
            gen_g = n * self.cost_lp.sum(axis=1)
            judge = self.cfg.judge_kwh_per_prompt
            judge_g = grams_per_request(n * float(judge), 0.0, self.ci, self.cfg.pue) if judge is not None else 0.0
            carbon = np.where(refresh, gen_g + judge_g, 0.0)
            self._evaluator = EvaluatorRuns(refresh, run_at, q, qt, nt, carbon, judge is not None)
        return self._evaluator

    def promise(self, ev: EvaluatorRuns | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(μ [H, L], Σ [H, L, L])``: the evaluator's estimate of the hour's win shares and the covariance
        of (realised − estimated) — re-weighted per task to the hour's mix unless ``cfg.reweight`` is off
        (then the latest run's pooled shares with a pooled covariance)."""
        ev = ev or self.evaluator()
        if self.cfg.reweight:   # the judged prompts are a finite sample of the users' (quality.served_promise)
            return qmod.served_promise(ev.q_lp_task, ev.n_task, self.weights, self.measured, self.theta,
                                       None if self.cfg.paper else self.pool_n, self.per_request())
        n_run = np.maximum(ev.n_task.sum(axis=1), 1.0)
        mu = ev.q_lp
        cov = qmod.realisation_cov(mu, n_run) + qmod.realisation_cov(mu, self.measured)
        if self.per_request():   # each request draws its level: Σ x_i(1 − x_i) μ_i per request
            cov = cov + qmod.assignment_cov(mu, self.theta) / np.maximum(self.measured, 1.0)[:, None, None]
        return mu, cov

    def solve(self, cost: np.ndarray, mu: np.ndarray, theta: np.ndarray, cov: np.ndarray | None = None) -> np.ndarray:
        """``x [H, L]`` for the hourly optimizer: the chance-constrained exact solver at ``z`` when ``cov`` is
        given and ``z > 0``, else the plug-in LP (exact or PuLP). Infeasible hours serve L0."""
        if cov is not None and self.z > 0:
            x, feas = opt.solve_chance_exact(cost, mu, cov, theta, self.z)
        else:
            x, feas = opt.solve_hours(cost, mu, theta, solver=self.cfg.solver)
        if not feas.all():  # cannot happen for θ ≤ 1 (always-L0 keeps quality 1); be safe rather than NaN
            x[~feas] = np.eye(cost.shape[1])[0]
        return x


def static_mean_ci(trace: Trace, start_hour: int, hours: int, rule: str) -> float:
    """STATIC's CI (g/kWh): the year's mean (``"year"``), the mean of the ``hours`` before the window
    (``"previous-window"``; the year's mean when there are none), or ``"paper"``: a window starting in
    January or February at the year's mean, a later one at the previous window's — what the authors'
    published STATIC files show (their Feb files were made at the year's mean, Jun/Oct at the previous
    window's; ``docs/optimizer.md`` gives the per-window error)."""
    if rule == "paper":
        rule = "year" if start_hour < month_start_hour(trace.year, 3) else "previous-window"
    prev = trace.ci[max(0, start_hour - hours):start_hour]
    return float(np.mean(prev)) if rule == "previous-window" and len(prev) else trace.mean()


def build_context(profile: Profile, trace: Trace, cfg: SimConfig) -> HourlyContext:
    """Slice the year's workload and the trace to the window ``cfg.start_hour … + cfg.hours``.

    A window that would run past the end of the year is refused with the largest valid length (never
    silently cut)."""
    N = len(trace)
    if not 0 <= cfg.start_hour < N:
        raise InputError(f"start hour {cfg.start_hour} is outside the year (0 … {N - 1} for {trace.zone} {trace.year})")
    if cfg.start_hour + cfg.hours > N:
        raise InputError(f"a {cfg.hours}-hour window from hour {cfg.start_hour} runs past the end of {trace.year} "
                         f"({N} hours): use at most {N - cfg.start_hour} hours, or an earlier start")
    s, e_ = cfg.start_hour, cfg.start_hour + cfg.hours
    wl = year_workload(profile, N, cfg.workload_spec())
    sl = slice(s, e_)
    # the authors' mix generator restarts with every replay: their window's hour j has composition j
    wsl = slice(0, cfg.hours) if cfg.mix_model == "paper" else sl
    ci = np.asarray(trace.ci[sl], dtype=float)
    w = wl.weights[wsl]
    e_lp, t_lp, _ = profile.under_mix(w)
    if cfg.paper_costs and profile.paper_costs is not None:
        e_lp, t_lp = w @ profile.paper_costs[0], w @ profile.paper_costs[1]
    req = wl.requests(wsl)
    e_r, t_r = req.e_real, req.t_real
    op = opt.cost_per_request(e_r, np.zeros_like(t_r), ci, 0.0, cfg.pue)     # operational part: e·CI·PUE
    emb = opt.cost_per_request(np.zeros_like(e_r), t_r, ci, profile.k_emb)  # embodied part: k_emb·t
    ci_mean = static_mean_ci(trace, s, cfg.hours, cfg.static_ci)
    theta = np.atleast_1d(opt.theta_from_xi(ci, trace.min(), trace.max(), cfg.xi))
    hist_from = max(0, s - max(cfg.schedule.trailing_h, 2))
    return HourlyContext(
        profile=profile, cfg=cfg, zone=trace.zone, year=trace.year, hour_of_year=np.arange(s, e_),
        timestamps=trace.timestamps[sl], ci=ci, ci_min=trace.min(), ci_max=trace.max(), ci_mean=ci_mean,
        history_ci=np.asarray(trace.ci[hist_from:s], dtype=float), theta=theta, weights=w, volume=wl.volume[wsl],
        e_lp=e_lp, t_lp=t_lp, cost_lp=opt.cost_per_request(e_lp, t_lp, ci, profile.k_emb, cfg.pue),
        e=e_r, t=t_r, operational_g=op, embodied_g=emb, cost=op + emb,
        q_true=req.q_true, q_true_task=req.q_true_task, n_true_task=req.n_true_task.astype(float),
        workload=wl, requests=req, wl_index=np.arange(wsl.start, wsl.stop), z=opt.z_value(cfg.confidence),
    )


# ---------------------------------------------------------------------------------- results

@dataclass
class StrategyResult:
    """One strategy over one window. Carbon in g CO₂eq per request (``method`` labels the energies);
    quality figures in % of always-L0 quality on the same requests."""

    name: str
    levels: tuple[str, ...]
    x: np.ndarray                 # [H, L]
    serving_g_h: np.ndarray       # [H] g/request served that hour (no evaluator)
    quality_h: np.ndarray         # [H] fraction of baseline
    theta_h: np.ndarray           # [H] the floor it promised against (NaN = none)
    carbon_g_per_request: float   # incl. evaluator (when charged)
    serving_g_per_request: float
    carbon_saving_pct: float
    quality_pct: float
    hours_meeting_floor_pct: float
    quality_p5_pct: float
    quality_min_pct: float
    quality_by_task_pct: dict[str, float]
    mean_x: dict[str, float]
    evaluator_runs: int
    evaluator_carbon_g: float
    refresh_hours: np.ndarray     # window indices of evaluator runs
    method: str
    note: str = ""

    def as_json(self) -> dict:
        def f(v):
            return None if v is None or not np.isfinite(v) else float(v)
        return {"carbon_g_per_request": f(self.carbon_g_per_request), "carbon_saving_pct": f(self.carbon_saving_pct),
                "quality_pct": f(self.quality_pct), "hours_meeting_floor_pct": f(self.hours_meeting_floor_pct),
                "quality_p5_pct": f(self.quality_p5_pct), "quality_min_pct": f(self.quality_min_pct),
                "quality_by_task_pct": {k: f(v) for k, v in self.quality_by_task_pct.items()},
                "mean_x": self.mean_x, "evaluator_runs": self.evaluator_runs,
                "evaluator_carbon_g": f(self.evaluator_carbon_g), "method": self.method}


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
    theta: np.ndarray
    judge_included: bool
    results: dict[str, StrategyResult]
    total_requests: float
    tasks: tuple[str, ...] = ()

    def table(self) -> pd.DataFrame:
        rows = []
        for r in self.results.values():
            row = {"zone": self.zone, "year": self.year, "start_hour": self.cfg.start_hour,
                   "hours": len(self.ci), "xi": self.cfg.xi, "confidence": self.cfg.confidence,
                   "mode": "paper" if self.cfg.paper else "default", "strategy": r.name,
                   "carbon_g_per_request": r.carbon_g_per_request, "carbon_saving_pct": r.carbon_saving_pct,
                   "quality_pct": r.quality_pct, "hours_meeting_floor_pct": r.hours_meeting_floor_pct,
                   "quality_p5_pct": r.quality_p5_pct, "quality_min_pct": r.quality_min_pct,
                   "mean_x": ", ".join(f"{k} {v:.2f}" for k, v in r.mean_x.items()),
                   "evaluator_runs": r.evaluator_runs, "evaluator_carbon_g": r.evaluator_carbon_g,
                   "method": r.method}
            for t, v in r.quality_by_task_pct.items():
                row[f"quality_{t}_pct"] = v
            rows.append(row)
        return pd.DataFrame(rows)


def _mean(v: np.ndarray, w: np.ndarray | None) -> float:
    v = np.asarray(v, dtype=float)
    ok = np.isfinite(v)
    if not ok.any():
        return float("nan")
    if w is None:
        return float(v[ok].mean())
    ww = np.asarray(w, dtype=float)[ok]
    return float((v[ok] * ww).sum() / ww.sum()) if ww.sum() > 0 else float(v[ok].mean())


def _quality_stats(q: np.ndarray, theta: np.ndarray) -> tuple[float, float, float]:
    """(% of hours with quality ≥ floor, 5th percentile %, minimum %) over the hours where quality is defined."""
    q = np.asarray(q, dtype=float)
    ok = np.isfinite(q)
    if not ok.any():
        return float("nan"), float("nan"), float("nan")
    th = np.asarray(theta, dtype=float)
    has_floor = ok & np.isfinite(th)
    meet = float(100.0 * np.mean(q[has_floor] >= th[has_floor] - 1e-9)) if has_floor.any() else float("nan")
    return meet, float(100.0 * np.percentile(q[ok], 5)), float(100.0 * q[ok].min())


def with_confidence(ctx: HourlyContext, confidence: float) -> HourlyContext:
    """The same window, requests and evaluator runs at another confidence (sweeps reuse one context)."""
    return replace(ctx, cfg=ctx.cfg.with_(confidence=float(confidence)), z=opt.z_value(confidence))


def simulate(profile: Profile, trace: Trace, cfg: SimConfig | None = None,
             strategies: str | Sequence[str] | None = "all", context: HourlyContext | None = None) -> SimResult:
    """Replay one window of ``trace`` with each strategy (see the module docstring). ``context``: a
    :func:`build_context` of the same profile, trace and ``cfg`` to reuse (e.g. :func:`with_confidence`)."""
    cfg = cfg or SimConfig()
    names = resolve_strategies(strategies, profile)
    ctx = context if context is not None else build_context(profile, trace, cfg)
    cfg = ctx.cfg
    vol = ctx.volume
    wts = vol if cfg.weighting == "requests" else None
    total_req = float(vol.sum())
    outs = {n: STRATEGIES[n].fn(ctx) for n in names}
    results: dict[str, StrategyResult] = {}
    base_g = None
    T = len(profile.tasks)
    for n in names:
        o = outs[n]
        serving_h = o.carbon_h if o.carbon_h is not None else (o.x * o.cost).sum(axis=1)
        serving = _mean(serving_h, wts)
        runs, ev_g, ref = 0, 0.0, np.zeros(0, dtype=int)
        if o.uses_evaluator:
            ev = ctx.evaluator()
            runs, ev_g, ref = ev.runs, ev.total_g, np.flatnonzero(ev.refresh)
        charged = ev_g if cfg.charge_evaluator else 0.0
        per_req = charged / total_req if cfg.weighting == "requests" else charged / (ctx.H * float(vol.mean()))
        total = serving + per_req
        if n == "BASE":
            base_g = total
        theta_h = ctx.theta if o.theta is None else o.theta
        meet, p5, qmin = _quality_stats(o.quality, theta_h)
        if cfg.per_task_floor and o.quality_task is not None and T > 1:   # a task-hour counts
            has = (ctx.n_true_task > 0) & np.isfinite(o.quality_task)
            th_t = np.broadcast_to(np.asarray(theta_h, dtype=float)[:, None], has.shape)
            ok = has & np.isfinite(th_t)
            meet = float(100.0 * np.mean(o.quality_task[ok] >= th_t[ok] - 1e-9)) if ok.any() else float("nan")
        by_task: dict[str, float] = {}
        if o.quality_task is not None and T > 1:
            wt = ctx.n_true_task if cfg.weighting == "requests" else None
            for k, t in enumerate(profile.tasks):
                by_task[t] = 100.0 * _mean(o.quality_task[:, k], None if wt is None else wt[:, k])
        results[n] = StrategyResult(
            name=n, levels=o.levels, x=o.x, serving_g_h=serving_h, quality_h=o.quality, theta_h=theta_h,
            carbon_g_per_request=total, serving_g_per_request=serving, carbon_saving_pct=float("nan"),
            quality_pct=100.0 * _mean(o.quality, wts), hours_meeting_floor_pct=meet, quality_p5_pct=p5,
            quality_min_pct=qmin, quality_by_task_pct=by_task,
            mean_x={lv: float(v) for lv, v in zip(o.levels, o.x.mean(axis=0))},
            evaluator_runs=runs, evaluator_carbon_g=ev_g if cfg.charge_evaluator else 0.0, refresh_hours=ref,
            method=profile.method, note=o.note)
    for r in results.values():
        r.carbon_saving_pct = float(saving_pct(r.carbon_g_per_request, base_g, missing=float("nan")))
    ev = ctx._evaluator
    return SimResult(zone=trace.zone, year=trace.year, cfg=cfg, profile_label=profile.label, method=profile.method,
                     timestamps=ctx.timestamps, ci=ctx.ci, ci_min=ctx.ci_min, ci_max=ctx.ci_max, theta=ctx.theta,
                     judge_included=bool(ev.judge_included) if ev is not None else cfg.judge_kwh_per_prompt is not None,
                     results=results, total_requests=total_req, tasks=tuple(profile.tasks))


Progress = Callable[[int, int, str], None]


def run_matrix(profile: Profile, traces: Sequence[Trace], windows: Sequence[tuple[str, int, int]], cfg: SimConfig,
               strategies: str | Sequence[str] | None = "all", progress: Progress | None = None,
               seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """Simulate every trace × window (``(label, start_hour, hours)``) × seed; one row per zone-window-seed-strategy.

    ``progress(done, total, what)`` is called after each replay."""
    frames = []
    seeds = list(seeds) if seeds is not None else [cfg.seed]
    total = len(traces) * len(windows) * len(seeds)
    done = 0
    for tr in traces:
        for label, start, hours in windows:
            for sd in seeds:
                res = simulate(profile, tr, cfg.with_(start_hour=int(start), hours=int(hours), seed=int(sd)), strategies)
                df = res.table()
                df.insert(2, "window", label)
                df.insert(3, "seed", int(sd))
                frames.append(df)
                done += 1
                if progress:
                    progress(done, total, f"{tr.zone} {label} seed {sd}")
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def xi_sweep(profile: Profile, trace: Trace, cfg: SimConfig, xis: Sequence[float],
             strategies: Sequence[str] = ("SPROUT", "ORACLE", "STATIC"), progress: Progress | None = None) -> pd.DataFrame:
    """Savings and quality for each ξ (rows: xi, strategy, carbon_saving_pct, quality_pct, hours_meeting_floor_pct)."""
    rows = []
    names = [n for n in strategies if n in resolve_strategies("all", profile)]
    for i, xi in enumerate(xis):
        res = simulate(profile, trace, cfg.with_(xi=float(xi)), names)
        for n in names:
            r = res.results[n]
            rows.append({"xi": float(xi), "strategy": n, "carbon_saving_pct": r.carbon_saving_pct,
                         "quality_pct": r.quality_pct, "hours_meeting_floor_pct": r.hours_meeting_floor_pct})
        if progress:
            progress(i + 1, len(xis), f"ξ = {xi:.2f}")
    return pd.DataFrame(rows)


def confidence_sweep(profile: Profile, trace: Trace, cfg: SimConfig, confidences: Sequence[float],
                     progress: Progress | None = None) -> pd.DataFrame:
    """What a kept promise costs: SPROUT's saving and share of hours meeting the floor for each confidence
    (rows: confidence, carbon_saving_pct, quality_pct, hours_meeting_floor_pct, quality_p5_pct)."""
    rows = []
    for i, c in enumerate(confidences):
        r = simulate(profile, trace, cfg.with_(confidence=float(c)), ["SPROUT"]).results["SPROUT"]
        rows.append({"confidence": float(c), "carbon_saving_pct": r.carbon_saving_pct, "quality_pct": r.quality_pct,
                     "hours_meeting_floor_pct": r.hours_meeting_floor_pct, "quality_p5_pct": r.quality_p5_pct})
        if progress:
            progress(i + 1, len(confidences), f"confidence {c:.2f}")
    return pd.DataFrame(rows)
