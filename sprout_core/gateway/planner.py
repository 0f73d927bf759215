"""The gateway's hourly decision: the same SPROUT optimizer and evaluator schedule as the replay, one hour at a time.

:class:`HourlyPlanner` keeps what :func:`sprout_core.simulate.simulate` computes for a whole window, but
streaming, as a server sees time:

* at each new hour :meth:`HourlyPlanner.new_hour` gets the hour's carbon intensity (g/kWh), steps the
  carbon-aware evaluator schedule (:class:`sprout_core.schedule.EvaluatorSchedule`, the same rule as
  :func:`~sprout_core.schedule.evaluator_refreshes`) and says whether the evaluator is due;
* the evaluator's per-task verdicts arrive through :meth:`HourlyPlanner.add_verdicts` (at once in a replay,
  later in a live gateway) and are pooled over ``evaluator_memory_h`` hours exactly as the replay pools them;
* :meth:`HourlyPlanner.solve` gives the hour's mix ``x`` over levels: the chance-constrained exact solver
  (:func:`sprout_core.optimizer.solve_chance_exact`) at the configured confidence, with the floor
  θ = 1 − ξ·(CI − CI_min)/(CI_max − CI_min) of the zone's year, the cost ``e·CI + k_emb·t`` under the hour's task
  mix and μ, Σ from :func:`sprout_core.quality.promise_inputs` — the same calls, with the same inputs, as the
  replay's SPROUT strategy, so the same day gives the same decisions (``tests/test_gateway_loop.py``).

Before the evaluator's first verdicts the profile's own q (and the verdict counts behind it) stands in.
Level assignment per request is :mod:`sprout_core.assign`'s rule (inverse CDF of ``u_k`` drawn one at a time
from ``level_stream(seed, hour)``), see :class:`LevelStream`.

Units: g/kWh, g CO₂e per request, hours.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from sprout_core import optimizer as opt
from sprout_core import quality as qmod
from sprout_core.assign import level_stream, pick_level  # the one assignment rule (shared with the replay)
from sprout_core.profiles import Profile
from sprout_core.schedule import EvaluatorSchedule, ScheduleParams
from sprout_core.workload import pool_sizes

POLICIES = ("sprout", "sprout-task", "fixed:L0", "fixed:L1", "fixed:L2")


@dataclass(frozen=True)
class HourPlan:
    """One hour's decision: ``x`` (share per level, sums to 1), the floor θ (fraction of always-L0 quality),
    the CI it was solved at (g/kWh), the cost per level (g CO₂e/request), μ (expected win shares) and where q
    came from."""

    hour: int
    levels: tuple[str, ...]
    x: tuple[float, ...]
    theta: float | None
    ci_g_per_kwh: float
    cost_g: tuple[float, ...]
    mu: tuple[float, ...]
    q_source: str
    evaluator_due: bool = False
    x_task: dict[str, tuple[float, ...]] | None = None  #: sprout-task: the mix per predicted task

    def x_for(self, task: str | None) -> tuple[float, ...]:
        """The mix a request of predicted ``task`` is drawn from (the pooled ``x`` without per-task mixes)."""
        if self.x_task is not None and task in self.x_task:
            return self.x_task[task]
        return self.x

    def as_json(self) -> dict:
        return {"hour": self.hour, "x": dict(zip(self.levels, self.x)), "theta": self.theta,
                "ci_g_per_kwh": self.ci_g_per_kwh, "cost_g_per_request": dict(zip(self.levels, self.cost_g)),
                "mu": dict(zip(self.levels, self.mu)), "q_source": self.q_source}


@dataclass
class _Run:
    t: int
    wins: np.ndarray   # [T, L] verdicts won per task and level
    n: np.ndarray      # [T] verdicts per task


@dataclass
class HourlyPlanner:
    """The streaming SPROUT decision (see the module docstring).

    ``ci_min``/``ci_max``: the zone's year range (g/kWh) the floor is placed in; ``history_ci``: CI of the hours
    before the first one (oldest first) for the schedule's trailing mean; ``policy``: ``sprout`` or
    ``fixed:Lk`` or ``sprout-task`` (one mix per predicted task, see :meth:`_per_task`).
    """

    profile: Profile
    ci_min: float
    ci_max: float
    xi: float = 0.1
    confidence: float = 0.9
    solver: str = "exact"
    policy: str = "sprout"
    schedule: ScheduleParams = field(default_factory=ScheduleParams)
    evaluator_memory_h: int = 168
    history_ci: Sequence[float] = ()
    #: sprout-task: the classifier's behaviour P(predicted | true task, winner) ``[T, L, P]`` (None = labels known)
    cond: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.z = opt.z_value(self.confidence)
        self._schedule = EvaluatorSchedule(self.schedule, history=list(self.history_ci))
        self._runs: list[_Run] = []
        self.t = -1                 # planner hour index (0 = the first hour served)
        self.hour_key: int | None = None
        self.ci: float | None = None
        self.weights = self.profile.default_weights()
        self.n_requests = 1000.0
        self.plan: HourPlan | None = None
        self.evaluator_runs: list[int] = []

    @property
    def levels(self) -> tuple[str, ...]:
        return tuple(self.profile.levels)

    # -- time
    def new_hour(self, hour_key: int, ci: float, weights: np.ndarray | None = None,
                 n_requests: float | None = None) -> bool:
        """Advance to the next hour (``hour_key``: e.g. the hour of the year) at ``ci`` g/kWh; returns True
        when the evaluator is due at this hour (the caller runs it and hands the verdicts to
        :meth:`add_verdicts`). ``weights``: the hour's task mix ``[T]``; ``n_requests``: requests expected
        this hour (how much realised quality can scatter)."""
        self.t += 1
        self.hour_key = int(hour_key)
        self.ci = float(ci)
        if weights is not None:
            w = np.asarray(weights, dtype=float)
            self.weights = w / w.sum()
        if n_requests is not None and n_requests > 0:
            self.n_requests = float(n_requests)
        due = self._schedule.step(self.ci)
        if due:
            self.evaluator_runs.append(self.t)
        self.plan = self.solve(due)
        return due

    def set_ci(self, ci: float) -> None:
        """The intensity changed within the hour (a live source): re-solve at the new CI."""
        self.ci = float(ci)
        self.plan = self.solve(self.plan.evaluator_due if self.plan else False)

    def add_verdicts(self, q_task: np.ndarray, n_task: np.ndarray, t: int | None = None) -> None:
        """An evaluator run's verdicts: per-task win shares ``[T, L]`` from ``n_task [T]`` verdicts, of the run
        due at planner hour ``t`` (default: now). Re-solves the current hour."""
        q = np.asarray(q_task, dtype=float)
        n = np.asarray(n_task, dtype=float)
        self._runs.append(_Run(self.t if t is None else int(t), q * n[:, None], n))
        if self.ci is not None:
            self.plan = self.solve(self.plan.evaluator_due if self.plan else False)

    # -- the estimate
    def q_estimate(self) -> tuple[np.ndarray, np.ndarray, str]:
        """``(q_task [T, L], n_task [T], source)`` the optimizer uses now: the evaluator runs pooled over the
        memory (always including the latest), as the replay pools them; the profile's q before any run."""
        runs = [r for r in self._runs if r.t <= self.t]
        if not runs:
            return np.asarray(self.profile.q, dtype=float), np.asarray(self.profile.n_judged, dtype=float), \
                f"profile ({self.profile.q_source}); no evaluator run yet"
        latest = max(runs, key=lambda r: r.t)
        qt = np.where(latest.n[:, None] > 0, latest.wins / np.maximum(latest.n, 1e-300)[:, None],
                      np.asarray(self.profile.q, dtype=float))
        nt = latest.n
        mem = int(self.evaluator_memory_h)
        if mem > 0:
            lo = min(self.t - mem, latest.t - 1)
            pool = [r for r in runs if r.t > lo]
            pw = sum(r.wins for r in pool)
            pn = sum(r.n for r in pool)
            qt = np.where(pn[:, None] > 0, pw / np.maximum(pn, 1e-300)[:, None], qt)
            nt = pn
        return qt, nt, f"evaluator: {len(runs)} run(s), latest at served hour {latest.t}"

    def solve(self, due: bool = False) -> HourPlan:
        """The current hour's plan (see the module docstring); ``fixed:Lk`` gives that level alone."""
        prof, ci = self.profile, float(self.ci if self.ci is not None else 0.0)
        L = len(prof.levels)
        w = self.weights
        e, tt = w @ prof.e_kwh, w @ prof.t_s
        cost = opt.cost_per_request(e, tt, ci, prof.k_emb)
        qt, nt, src = self.q_estimate()
        theta_h = float(opt.theta_from_xi(ci, self.ci_min, self.ci_max, self.xi))
        # the replay's promise as served: finite population of judged prompts, each request drawing its level
        mu, cov = qmod.served_promise(qt, nt, w, self.n_requests, theta_h, pool_sizes(prof), per_request=True)
        x_task = None
        if self.policy.startswith("fixed:"):
            k = list(prof.levels).index(self.policy.split(":", 1)[1])
            x = np.eye(L)[k]
            theta = None
        elif self.policy == "sprout-task":
            theta = float(opt.theta_from_xi(ci, self.ci_min, self.ci_max, self.xi))
            xt, x = self._per_task(ci, qt, nt, theta)
            x_task = {t: tuple(float(v) for v in xt[k]) for k, t in enumerate(prof.tasks)}
        else:
            theta = float(opt.theta_from_xi(ci, self.ci_min, self.ci_max, self.xi))
            if self.z > 0:
                xs, feas = opt.solve_chance_exact(cost[None], mu[None], cov[None], np.array([theta]), self.z)
            else:
                xs, feas = opt.solve_hours(cost[None], mu[None], np.array([theta]), solver=self.solver)
            x = xs[0] if bool(feas[0]) else np.eye(L)[0]
        return HourPlan(int(self.hour_key if self.hour_key is not None else 0), tuple(prof.levels),
                        tuple(float(v) for v in x), theta, ci, tuple(float(v) for v in cost),
                        tuple(float(v) for v in mu), src, due, x_task)

    def _per_task(self, ci: float, qt: np.ndarray, nt: np.ndarray, theta: float) -> tuple[np.ndarray, np.ndarray]:
        """SPROUT-TASK's hour: one mix per predicted task (``[P, L]``) and the level shares it serves (``[L]``),
        as :func:`sprout_core.tasks.sim.sprout_task` plans them — per-task q shrunk toward the pooled q, costs per
        task, the classifier's behaviour ``cond``, the floor raised by the promise's margin (3 rounds)."""
        from sprout_core.tasks import sim as task_sim

        prof, w = self.profile, self.weights
        q_pool = (qt * nt[:, None]).sum(axis=0) / max(float(nt.sum()), 1e-300)
        q_lp = task_sim.shrink_task_q(qt, nt, q_pool, task_sim.SHRINK_PRIOR_PROMPTS)
        cost_task = opt.cost_per_request(prof.e_kwh, prof.t_s, ci, prof.k_emb)
        th, n = np.array([theta]), np.array([self.n_requests])
        margin = np.zeros(1)
        for _ in range(3 if self.z > 0 else 1):
            rep = task_sim.replay_per_task(cost_task[None], w[None], q_lp[None], q_lp[None], th, self.cond, margin=margin)
            margin = task_sim.promise_margin(rep.x, w[None], q_lp[None], nt[None], n, th, self.cond, self.z)
        return rep.x[0], rep.x_eff[0]


class LevelStream:
    """Request ``k`` of hour ``h`` gets ``pick_level(x, u_k)`` with ``u_k`` the k-th draw of
    ``level_stream(seed, h)`` — one draw per assigned (not pinned) request, so a replay of the same hour with
    :func:`sprout_core.assign.assign_hour` gives the same levels."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)
        self.hour: int | None = None
        self._rng: np.random.Generator | None = None
        self.drawn = 0

    def next(self, hour: int, x: Sequence[float]) -> int:
        if hour != self.hour or self._rng is None:
            self.hour, self._rng, self.drawn = int(hour), level_stream(self.seed, int(hour)), 0
        u = float(self._rng.random())
        self.drawn += 1
        return int(pick_level(x, u))
