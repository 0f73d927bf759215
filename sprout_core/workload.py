"""The hourly workload a what-if replay serves, for a whole year (zone-independent, seeded, cached).

Per hour ``h`` of the year:

* the **task mix** ``weights[h]`` — each task reads the task-mix (job-count) trace from its own random
  offset, re-normalised about once a day (every ``round(N(24, 4.8))`` h). Two ways to walk the trace:
  ``"trace-hour"`` (default: at each refresh read the row ``offset + h``) and ``"paper"`` (the authors'
  simulator: one row further per refresh, offsets below ``len − hours/24``, drawn with numpy's legacy
  ``RandomState(seed)`` in the authors' call order, so seed 0 gives the exact mixes behind the paper's
  figures);
* the **volume** ``volume[h]`` requests/h (the trace's job counts summed over tasks, or a fixed number);
* the hour's **requests**: the winner counts of all ``volume[h]`` of them (drawn per task from the profile's
  win shares — the law of drawing judged prompts with replacement) give the hour's true win shares
  ``q_true``; a sample of ``min(volume[h], 1,000)`` actual judged prompts from the profile's
  :class:`~sprout_core.profiles.PromptTable` gives the hour's realised energy/time per level
  (``e_real``/``t_real``) and the requests ORACLE chooses for one by one. In paper mode the hour's truth is
  1,000 prompts drawn without replacement from each task's judged pool;
* what an **evaluator run** at that hour would measure: ``n_eval`` prompts drawn under the hour's mix,
  with per-task verdict counts (paper mode: the hour's own 1,000-prompt sample).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from sprout_core.cache import KeyedCache
from sprout_core.errors import InputError
from sprout_core.profiles import Profile

#: Requests per hour when neither the task-mix trace nor the caller gives a volume.
DEFAULT_REQUESTS_PER_HOUR = 1000.0
#: Prompts per hour the authors' simulator samples for the hour's true quality.
PAPER_TRUE_PROMPTS = 1000
#: At most this many of an hour's requests are drawn one by one (their costs, ORACLE's choices); the hour's
#: quality counts all of them.
MEASURED_PER_HOUR = 1000
MIX_MODELS = ("trace-hour", "paper")
#: The authors' task order (``main.py``'s ``datasets``): their random offsets are drawn in this order.
PAPER_TASK_ORDER = ("alpaca", "math", "mmlu", "naturalqa", "triviaqa", "scienceqa")


@dataclass(frozen=True, eq=False)
class Requests:
    """The actual requests of a stretch of hours (``[n, …]`` arrays for its ``n`` hours)."""

    q_true_task: np.ndarray    # [n, T, L] win shares among the hour's requests, per task
    n_true_task: np.ndarray    # [n, T] the hour's requests per task
    q_true: np.ndarray         # [n, L] pooled
    e_real: np.ndarray         # [n, L] kWh/request: mean over the hour's requests (or mix-expected)
    t_real: np.ndarray         # [n, L] s/request
    rows: np.ndarray | None = None     # [R] PromptTable rows of the requests, hour by hour
    offsets: np.ndarray | None = None  # [n + 1] hour j's requests are rows[offsets[j]:offsets[j+1]]
    # per-request assignment (WorkloadSpec.per_request): every one of the hour's requests, its task, best
    # level and assignment draw u (sprout_core.assign.level_stream(seed, hour)); within an hour sorted by
    # (task, winner, u); hour j's are [req_offsets[j]:req_offsets[j+1]]
    task_r: np.ndarray | None = None    # [Q] int8
    winner_r: np.ndarray | None = None  # [Q] int8
    u_r: np.ndarray | None = None       # [Q] float64 in [0, 1)
    req_offsets: np.ndarray | None = None  # [n + 1]

    @staticmethod
    def concat(parts: list["Requests"]) -> "Requests":
        if len(parts) == 1:
            return parts[0]
        def offs(name):
            if getattr(parts[0], name) is None:
                return None
            sizes = np.concatenate([np.diff(getattr(p, name)) for p in parts])
            return np.concatenate([[0], np.cumsum(sizes)])

        cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731 - concatenates one field of every part, one line
        opt_cat = lambda name: cat(name) if getattr(parts[0], name) is not None else None  # noqa: E731 - the same, None where the parts have none
        return Requests(cat("q_true_task"), cat("n_true_task"), cat("q_true"), cat("e_real"), cat("t_real"),
                        opt_cat("rows"), offs("offsets"), opt_cat("task_r"), opt_cat("winner_r"), opt_cat("u_r"),
                        offs("req_offsets"))


@dataclass(frozen=True, eq=False)
class Workload:
    """Zone-independent per-hour inputs for ``N`` hours from the start of a year (``[N, …]`` arrays).

    The hours' actual requests are drawn lazily, one block of :data:`BLOCK_H` hours at a time (each block
    seeded on its own, so an hour's requests never depend on which window asked first): use
    :meth:`requests`."""

    profile: Profile
    spec: "WorkloadSpec"
    weights: np.ndarray        # [N, T] task mix
    volume: np.ndarray         # [N] requests/h
    mix_refresh: np.ndarray    # [N] bool: task weights refreshed at this hour
    q_eval_task: np.ndarray    # [N, T, L] what an evaluator run at that hour would measure, per task
    n_eval_task: np.ndarray    # [N, T] its verdicts per task
    q_eval: np.ndarray         # [N, L] pooled
    _blocks: dict = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def n_hours(self) -> int:
        return int(self.weights.shape[0])

    def requests(self, sl: slice) -> Requests:
        """The actual requests of hours ``sl`` (a contiguous slice of the year)."""
        a, b = int(sl.start or 0), int(sl.stop if sl.stop is not None else self.n_hours)
        if not 0 <= a < b <= self.n_hours:
            raise InputError(f"hours {a}…{b - 1} are outside the workload's {self.n_hours} hours")
        parts = []
        for k in range(a // BLOCK_H, (b - 1) // BLOCK_H + 1):
            blk = self._block(k)
            lo, hi = max(a, k * BLOCK_H) - k * BLOCK_H, min(b, (k + 1) * BLOCK_H) - k * BLOCK_H
            parts.append(_slice_requests(blk, lo, hi))
        return Requests.concat(parts)

    def _block(self, k: int) -> Requests:
        with self._lock:
            hit = self._blocks.get(k)
        if hit is None:
            hit = _draw_requests(self, k)
            with self._lock:
                self._blocks[k] = hit
        return hit


#: Hours per lazily drawn block of requests (31 days).
BLOCK_H = 744


def _slice_requests(r: Requests, lo: int, hi: int) -> Requests:
    def part(off, *arrays):
        if off is None:
            return (None,) + tuple(None for _ in arrays)
        a, b = off[lo], off[hi]
        return (off[lo:hi + 1] - a,) + tuple(None if v is None else v[a:b] for v in arrays)

    offsets, rows = part(r.offsets, r.rows)
    req_offsets, task_r, winner_r, u_r = part(r.req_offsets, r.task_r, r.winner_r, r.u_r)
    return Requests(r.q_true_task[lo:hi], r.n_true_task[lo:hi], r.q_true[lo:hi], r.e_real[lo:hi], r.t_real[lo:hi],
                    rows, offsets, task_r, winner_r, u_r, req_offsets)


@dataclass(frozen=True)
class WorkloadSpec:
    """What a workload depends on (its cache key)."""

    seed: int = 0
    n_eval: int = 500
    requests_per_hour: float | None = None
    fixed_mix: tuple[tuple[str, float], ...] | None = None
    mix_interval_mean_h: float = 24.0
    mix_interval_sd_h: float = 4.8
    mix_model: str = "trace-hour"
    paper_requests: bool = False       #: the hour's true sample: 1,000 judged prompts without replacement
    evaluator_is_hour_sample: bool = False  #: an evaluator run measures the hour's own true sample (paper)
    paper_costs: bool = False          #: costs are per-task means over prompts < 5000 (the authors')
    window_hours: int = 720            #: the replay length (only the paper's offset bound uses it)
    sample_seed: int | None = None     #: seeds the sampled prompts apart from the task mix (None = seed)
    per_request: bool = False          #: every request of the hour draws its level (sprout_core.assign)
    assign_seed: int = 0               #: the seed of the assignment streams (the replay's seed)
    stress_split: tuple[int, int] | None = None  #: (partition seed, swap): users and evaluator on disjoint halves


def _task_weights(profile: Profile, n_hours: int, spec: WorkloadSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    T = len(profile.tasks)
    refresh = np.zeros(n_hours, dtype=bool)
    if spec.fixed_mix is not None:
        w = profile.weights_from(dict(spec.fixed_mix))
        vol = spec.requests_per_hour or (float(np.mean(profile.task_trace)) * T if profile.task_trace is not None
                                         else DEFAULT_REQUESTS_PER_HOUR)
        refresh[0] = True
        return np.tile(w, (n_hours, 1)), np.full(n_hours, float(vol)), refresh
    trace = profile.task_trace
    if trace is None or len(trace) == 0:
        vol = spec.requests_per_hour or DEFAULT_REQUESTS_PER_HOUR
        refresh[0] = True
        return np.tile(profile.default_weights(), (n_hours, 1)), np.full(n_hours, float(vol)), refresh
    weights = np.zeros((n_hours, T))
    volume = np.zeros(n_hours)
    if spec.mix_model == "paper":
        # sprout/system/utils.py PromptGeneratorPAI: np.random.seed(seed); per task randint(0, len − hours/24);
        # at each refresh the next row of every task's pointer, then += round(normal(24, 0.2·24))
        rs = np.random.RandomState(int(spec.seed) % (2 ** 32))
        hi = len(trace) - spec.window_hours / spec.mix_interval_mean_h
        # offsets are drawn in the authors' task order when the profile has their tasks
        order = ([PAPER_TASK_ORDER.index(t) for t in profile.tasks] if sorted(profile.tasks) == sorted(PAPER_TASK_ORDER)
                 else list(range(T)))
        drawn = np.array([rs.randint(0, max(1, int(np.ceil(hi)))) for _ in range(T)])
        ptr = drawn[order]
        nxt = 0
        for h in range(n_hours):
            if h == nxt:
                counts = trace[ptr % len(trace)]
                weights[h] = counts / counts.sum()
                volume[h] = counts.sum()
                refresh[h] = True
                ptr = ptr + 1
                nxt += int(round(rs.normal(spec.mix_interval_mean_h, spec.mix_interval_sd_h)))
                nxt = max(nxt, h + 1)
            else:
                weights[h], volume[h] = weights[h - 1], volume[h - 1]
    else:
        rng = np.random.default_rng(np.random.SeedSequence([int(spec.seed), 1]))
        offsets = rng.integers(0, len(trace), size=T)
        h = 0
        while h < n_hours:
            counts = trace[(offsets + h) % len(trace)]
            step = max(1, int(round(rng.normal(spec.mix_interval_mean_h, spec.mix_interval_sd_h))))
            weights[h:h + step] = counts / counts.sum()
            volume[h:h + step] = counts.sum()
            refresh[h] = True
            h += step
    if spec.requests_per_hour:
        volume[:] = float(spec.requests_per_hour)
    return weights, volume, refresh


def _shares(wins: np.ndarray, n: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        s = wins / n[..., None]
    return np.where(n[..., None] > 0, s, fallback)


def _multinomial_wins(rng: np.random.Generator, n: np.ndarray, weights: np.ndarray,
                      q_task: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-task prompt counts ``[N, T]`` and winner counts ``[N, T, L]`` of ``n[h]`` prompts under ``weights[h]``."""
    n_int = np.maximum(1, np.round(n)).astype(np.int64)
    per_task_n = rng.multinomial(n_int, weights)
    wins = rng.multinomial(per_task_n, q_task)
    return per_task_n, wins


def _hypergeometric_wins(rng: np.random.Generator, counts: np.ndarray, pool_wins: np.ndarray) -> np.ndarray:
    """Winner counts ``[N, T, L]`` of ``counts[h, t]`` prompts drawn without replacement from each task's judged
    pool with ``pool_wins[t]`` winners per level (a multivariate hypergeometric, level by level)."""
    N, T = counts.shape
    L = pool_wins.shape[1]
    out = np.zeros((N, T, L), dtype=np.int64)
    left = counts.astype(np.int64).copy()
    good_left = np.broadcast_to(pool_wins, (N, T, L)).astype(np.int64)
    for i in range(L - 1):
        good = good_left[..., i]
        bad = good_left[..., i + 1:].sum(axis=-1)
        take = np.minimum(left, good + bad)
        draw = rng.hypergeometric(np.maximum(good, 0), np.maximum(bad, 0), np.maximum(take, 0)) if take.any() \
            else np.zeros_like(take)
        draw = np.where(take > 0, draw, 0)
        out[..., i] = draw
        left = left - draw
    out[..., L - 1] = left
    return out


def split_pools(profile: Profile, split: tuple[int, int] | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(users, evaluator)``: each task's judged-prompt rows the users send and the evaluator judges.

    Without a split both are every judged prompt. With ``split = (s, swap)`` each task's prompts are
    permuted by ``default_rng([s, 18])`` and cut in two halves; the users get the first half and the
    evaluator the second (``swap = 1``: the other way round)."""
    table = profile.prompts
    T = len(profile.tasks)
    if table is None:
        if split is not None:
            raise InputError("--stress held-out needs a profile with per-prompt verdicts (the reference profile has "
                             "them); this profile has only per-task shares")
        return [], []
    pools = table.pools(T)
    if split is None:
        return pools, pools
    rng = np.random.default_rng([int(split[0]), 18])
    users, ev = [], []
    for p in pools:
        perm = p[rng.permutation(len(p))]
        a, b = perm[: len(p) // 2], perm[len(p) // 2:]
        if int(split[1]) % 2:
            a, b = b, a
        users.append(np.sort(a))
        ev.append(np.sort(b))
    return users, ev


def pool_sizes(profile: Profile, split: tuple[int, int] | None = None) -> np.ndarray:
    """``[T]`` judged prompts per task the evaluator draws from (its half under a split; without a per-prompt
    table the profile's verdict counts)."""
    ev = split_pools(profile, split)[1]
    if ev:
        return np.array([float(len(p)) for p in ev])
    return np.maximum(np.asarray(profile.n_judged, dtype=float), 1.0)


def pool_shares(profile: Profile, pools: list[np.ndarray]) -> np.ndarray:
    """``[T, L]`` winner shares of each task's pool (the profile's q when there is no table)."""
    if not pools:
        return np.asarray(profile.q, dtype=float)
    L = profile.q.shape[1]
    out = np.asarray(profile.q, dtype=float).copy()
    for t, p in enumerate(pools):
        if len(p):
            out[t] = np.bincount(profile.prompts.winner[p], minlength=L) / len(p)
    return out


def _assignment_draws(spec: WorkloadSpec, first_hour: int, offsets: np.ndarray) -> np.ndarray:
    """``u [R]``: hour ``first_hour + j``'s requests take the first draws of ``assign.level_stream(seed, hour)``."""
    from sprout_core.assign import level_stream

    sizes = np.diff(offsets)
    return np.concatenate([level_stream(spec.assign_seed, first_hour + j).random(int(n)) for j, n in enumerate(sizes)]) \
        if len(sizes) else np.zeros(0)


def _draw_requests(wl: Workload, k: int) -> Requests:
    """Block ``k`` of hours: the hour's requests (see the module docstring), seeded by (seed, block)."""
    profile, spec = wl.profile, wl.spec
    a, b = k * BLOCK_H, min(wl.n_hours, (k + 1) * BLOCK_H)
    n_hours = b - a
    weights, volume = wl.weights[a:b], wl.volume[a:b]
    r_true, r_rows = (np.random.default_rng(s) for s in np.random.SeedSequence([int(spec.seed if spec.sample_seed is None else spec.sample_seed), 3, k]).spawn(2))
    T, L = profile.q.shape
    table = profile.prompts
    e_mix, t_mix, _ = profile.under_mix(weights)
    if spec.paper_costs and profile.paper_costs is not None:
        e_mix, t_mix = weights @ profile.paper_costs[0], weights @ profile.paper_costs[1]
    rows = offsets = None
    if spec.paper_requests:
        n_true = r_true.multinomial(np.full(n_hours, PAPER_TRUE_PROMPTS), weights)
        if table is not None:
            pool_wins = np.stack([np.bincount(table.winner[table.task == t], minlength=L) for t in range(T)])
            wins = _hypergeometric_wins(r_true, n_true, pool_wins)
        else:
            wins = r_true.multinomial(n_true, profile.q)
        e_real, t_real = e_mix, t_mix
    elif table is not None and not spec.paper_costs:
        # the hour's quality: every one of its requests (winner counts drawn from the per-task win shares of
        # the users' prompts, the same law as drawing judged prompts with replacement)
        q_users = pool_shares(profile, split_pools(profile, spec.stress_split)[0]) if spec.stress_split else profile.q
        n_true, wins = _multinomial_wins(r_true, volume, weights, q_users)
        # the hour's requests themselves (their costs, and ORACLE's per-request choices): a sample of up
        # to MEASURED_PER_HOUR of them, drawn by the mix from the judged prompts
        n_sub = r_rows.multinomial(np.clip(np.round(volume), 1, MEASURED_PER_HOUR).astype(np.int64), weights)
        pools = split_pools(profile, spec.stress_split)[0]
        sizes = np.array([len(p) for p in pools])
        if (sizes[n_sub.sum(axis=0) > 0] == 0).any():
            raise InputError("the profile's prompt table has no prompts for a task that the mix draws")
        task_of = np.repeat(np.tile(np.arange(T, dtype=np.int32), n_hours), n_sub.ravel())
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        order = np.concatenate(pools).astype(np.int32)
        pick = (r_rows.random(task_of.shape[0], dtype=np.float32) * sizes[task_of]).astype(np.int32)
        rows = order[starts[task_of] + np.minimum(pick, sizes[task_of] - 1)]
        per_hour = n_sub.sum(axis=1)
        offsets = np.concatenate([[0], np.cumsum(per_hour)])
        hour_of = np.repeat(np.arange(n_hours, dtype=np.int32), per_hour)
        # realised energy/time: the sample's mean per hour (the table's columns, gathered once)
        e_real = np.stack([np.bincount(hour_of, table.e_kwh[:, i][rows], minlength=n_hours) for i in range(L)], 1) \
            / np.maximum(per_hour, 1)[:, None]
        t_real = np.stack([np.bincount(hour_of, table.t_s[:, i][rows], minlength=n_hours) for i in range(L)], 1) \
            / np.maximum(per_hour, 1)[:, None]
    else:
        n_true, wins = _multinomial_wins(r_true, volume, weights, profile.q)
        e_real, t_real = e_mix, t_mix
    task_r = winner_r = u_r = req_off = None
    if spec.per_request:
        # every one of the hour's requests (its task and best level from the counts above) draws its level:
        # request k of hour h takes the k-th draw of assign.level_stream(seed, h); kept sorted by
        # (task, best level, u) within the hour, which is all the segment count needs
        cnt = np.asarray(wins, dtype=np.int64)                              # [n, T, L]
        per_hour = cnt.sum(axis=(1, 2))
        req_off = np.concatenate([[0], np.cumsum(per_hour)])
        flat_n = cnt.ravel()
        task_r = np.repeat(np.tile(np.repeat(np.arange(T, dtype=np.int8), L), n_hours), flat_n)
        winner_r = np.repeat(np.tile(np.arange(L, dtype=np.int8), n_hours * T), flat_n)
        u = _assignment_draws(spec, a, req_off)
        seg = np.repeat(np.arange(n_hours * T * L, dtype=np.float64), flat_n)
        u_r = u[np.argsort(seg + u, kind="stable")]
    q_true_task = _shares(wins, n_true, profile.q[None])
    q_true = wins.sum(axis=1) / np.maximum(n_true.sum(axis=1), 1)[:, None]
    return Requests(q_true_task, n_true, q_true, e_real, t_real, rows, offsets, task_r, winner_r, u_r, req_off)


#: keyed by the profile object itself (Profile compares by identity), the spec and the hours; 6 entries
_CACHE: KeyedCache = KeyedCache("workloads", maxsize=6)


def year_workload(profile: Profile, n_hours: int, spec: WorkloadSpec) -> Workload:
    """The seeded workload of ``n_hours`` hours from the start of a year (cached, 6 entries)."""
    if spec.mix_model not in MIX_MODELS:
        raise InputError(f"mix model must be one of {MIX_MODELS}, not {spec.mix_model!r}")
    def make() -> Workload:
        weights, volume, refresh = _task_weights(profile, n_hours, spec)
        r_eval = np.random.default_rng(np.random.SeedSequence([int(spec.seed if spec.sample_seed is None else spec.sample_seed),
                                                               2]))
        return Workload(profile, spec, weights, volume, refresh, *_evaluator_samples(r_eval, weights, spec, profile))

    return _CACHE.get((profile, spec, int(n_hours)), make)


def _evaluator_samples(rng, weights, spec, profile):
    """What an evaluator run at each hour would measure: ``n_eval`` verdicts drawn under the hour's mix from
    the evaluator's pool of judged prompts (all of them, or its half under the held-out stress)."""
    q_pop = pool_shares(profile, split_pools(profile, spec.stress_split)[1]) if spec.stress_split else profile.q
    n_eval_task, ewins = _multinomial_wins(rng, np.full(weights.shape[0], float(spec.n_eval)), weights, q_pop)
    q_eval_task = _shares(ewins, n_eval_task, profile.q[None])
    q_eval = ewins.sum(axis=1) / np.maximum(n_eval_task.sum(axis=1), 1)[:, None]
    return q_eval_task, n_eval_task, q_eval
