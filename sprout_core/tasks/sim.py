"""SPROUT-TASK in the what-if replay: the per-task LP acting on *predicted* tasks.

Per hour ``h`` the strategy sees what SPROUT sees (the CI, the ξ floor θ_h, the latest offline
evaluator run) and in addition the evaluator's verdicts grouped by task. It solves the per-task LP
(:mod:`sprout_core.tasks.lp`) over the classifier's *predicted* tasks, with costs and quality
aggregated through the classifier's measured behaviour on held-out judged prompts:

``P(pred = p | true task t, best level i)`` — how often the classifier predicted ``p`` for a held-out
judged prompt of task ``t`` whose GPT-4 verdict was level ``i``.

The right-hand side is SPROUT's: ``θ_h · q̂_0`` with ``q̂_0 = Σ_t w_{h,t} q̂_{t,0}`` the evaluator's
pooled L0 win share under the hour's task mix. The replay then *applies the predictions*: a request
of true task ``t`` with best level ``i`` is predicted ``p`` with the measured frequency and served
from ``x_p``; its carbon and quality follow its true task (``cost_task``, the hour's sampled true
win shares). Reported quality = delivered win share / ``Σ_t w_{h,t} q_{true,t,0}`` (the true L0 win
share under the same weighting).

Not included: the classifier's own energy per request (one MiniLM embedding on a CPU, ~10 ms) —
stated as n/a in the docs, never as 0.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import numpy as np

from sprout_core import quality as qmod
from sprout_core import refdata
from sprout_core.cache import KeyedCache
from sprout_core.errors import InputError
from sprout_core.tasks import classifier as tc
from sprout_core.tasks import lp

STRATEGY_NAME = "SPROUT-TASK"
#: Prior strength κ (in prompts) pulling each task's evaluator q toward the pooled q (see shrink_task_q).
SHRINK_PRIOR_PROMPTS = 50.0
STRATEGY_DESCRIPTION = ("one mix per predicted task (embedding classifier), the per-task LP with q per task from "
                        "the carbon-aware offline evaluator; misclassification accounted")


@dataclass(frozen=True)
class PredictionModel:
    """How the classifier behaves on held-out judged prompts, in a profile's task and level order.

    ``cond[t, i, p]`` = P(pred = p | true task t, best level i); ``counts[t, i, p]`` the prompt counts
    behind it (cells without prompts fall back to the task's confusion row); ``confusion[t, p]`` =
    P(pred = p | t); ``accuracy`` over the held-out prompts (0–1).
    """

    tasks: tuple[str, ...]
    levels: tuple[str, ...]
    cond: np.ndarray
    counts: np.ndarray
    confusion: np.ndarray
    accuracy: float
    n_prompts: int
    source: str


def prediction_model_from_table(tasks, levels, true_task, winner, predicted, source: str = "table") -> PredictionModel:
    """Build a :class:`PredictionModel` from per-prompt (true task, winner level, predicted task) lists.

    Predicted tasks outside ``tasks`` are not allowed (the LP needs one mix per predicted task).
    """
    tasks, levels = tuple(tasks), tuple(levels)
    ti = {t: k for k, t in enumerate(tasks)}
    li = {l: k for k, l in enumerate(levels)}
    T, L = len(tasks), len(levels)
    counts = np.zeros((T, L, T))
    for t, i, p in zip(true_task, winner, predicted):
        if t not in ti or i not in li:
            continue
        if p not in ti:
            raise ValueError(f"predicted task {p!r} is not one of the profile's tasks {list(tasks)}")
        counts[ti[t], li[i], ti[p]] += 1
    per_task = counts.sum(axis=1)  # [T, P]
    conf = lp.normalize_confusion(per_task)
    tot = counts.sum(axis=2, keepdims=True)
    cond = np.where(tot > 0, counts / np.where(tot > 0, tot, 1.0), conf[:, None, :])
    n = int(counts.sum())
    acc = float(np.trace(per_task) / n) if n else float("nan")
    return PredictionModel(tasks, levels, cond, counts, conf, acc, n, source)


#: (planning, scoring) prediction models per classifier fingerprint and profile order
_PM_CACHE: KeyedCache = KeyedCache("task prediction models")
#: Seed of the split of the classifier's held-out judged prompts into a planning and a scoring half.
SPLIT_SEED = 20240311


def reference_prediction_models(profile, clf=None, progress=None) -> tuple[PredictionModel, PredictionModel]:
    """The reference classifier's held-out behaviour on judged prompts, in ``profile``'s order, estimated on
    two disjoint halves: ``(plan, score)``.

    The classifier's held-out split (judged prompts it never trained on) is divided in two by a seeded
    permutation per task: the optimizer plans with the misclassification model of the first half, and the
    replay scores what it delivers with that of the second — so the prompts that estimate the model are
    kept apart from those that score the outcome. Embeddings come from the state-folder cache; trains the
    classifier first when none is cached (minutes; ``progress(done, total)`` counts prompts embedded).
    """
    clf = clf or tc.reference_classifier(progress=progress)
    fingerprint = hashlib.sha1(np.ascontiguousarray(clf.coef).tobytes() + np.ascontiguousarray(clf.intercept).tobytes())
    key = (fingerprint.hexdigest(), tuple(clf.labels), tuple(profile.tasks), tuple(profile.levels), clf.n_train,
           clf.n_test, repr(sorted(clf.settings.items())))
    def make():
        s = clf.settings
        _, test = tc.reference_split(int(s.get("train_per_task", tc.DEFAULT_TRAIN_PER_TASK)),
                                     int(s.get("test_per_task", tc.DEFAULT_TEST_PER_TASK)), int(s.get("seed", 0)))
        jud = refdata.judgments().drop_duplicates(["task", "prompt_index"])
        test = test.merge(jud, left_on=["category", "prompt_index"], right_on=["task", "prompt_index"], how="inner")
        pred_idx = clf.predict_embeddings(tc.embed(test["prompt"].tolist(), progress=progress))
        test = test.assign(predicted=[clf.labels[k] for k in pred_idx])
        rng = np.random.default_rng(SPLIT_SEED)
        half = np.zeros(len(test), dtype=bool)
        for _, idx in test.groupby("category").indices.items():
            perm = rng.permutation(idx)
            half[perm[: len(perm) // 2]] = True
        out = []
        for part, name in ((test[half], "planning half"), (test[~half], "scoring half")):
            out.append(prediction_model_from_table(profile.tasks, profile.levels, part["category"].tolist(),
                                                   part["winner"].tolist(), part["predicted"].tolist(),
                                                   source=f"{clf.source}; held-out judged prompts, {name}"))
        return (out[0], out[1])

    return _PM_CACHE.get(key, make)


def reference_prediction_model(profile, clf=None, progress=None) -> PredictionModel:
    """The planning half's misclassification model (see :func:`reference_prediction_models`)."""
    return reference_prediction_models(profile, clf, progress)[0]


REFERENCE_TASKS = frozenset({"alpaca", "math", "mmlu", "naturalqa", "scienceqa", "triviaqa"})


def supports(profile) -> bool:
    """SPROUT-TASK needs several tasks that the reference classifier knows (the reference profile)."""
    return len(profile.tasks) >= 2 and set(profile.tasks) <= REFERENCE_TASKS


def classifier_ready() -> bool:
    """True when a trained reference classifier is cached in the state folder."""
    from sprout_core.tasks import classifier as tc

    return tc.classifier_path(tc.REFERENCE_NAME).with_suffix(".npz").exists()


def available(profile) -> bool:
    """SPROUT-TASK is offered (and part of ``"all"``) when the profile fits and the classifier is trained.

    Training takes minutes, so it never starts as a side effect of ``"all"``: the CLI trains it when
    SPROUT-TASK is asked for by name (:func:`prepare`), the What-if page offers a button.
    """
    return supports(profile) and classifier_ready()


def requested(strategies) -> bool:
    """Whether a strategies argument names SPROUT-TASK explicitly (not via ``"all"``)."""
    if strategies is None:
        return False
    names = [n.strip() for n in strategies.split(",")] if isinstance(strategies, str) else list(strategies)
    return any(n.upper() == STRATEGY_NAME for n in names)


def prepare(profile, strategies, progress=None) -> str | None:
    """Get SPROUT-TASK ready for a replay; returns a note for the user or ``None``.

    Named explicitly → train the reference classifier now if it is missing (``MissingDataError`` when
    the public prompts are absent; ``ValueError`` when the profile has no reference tasks). Via
    ``"all"`` → never trains; says SPROUT-TASK is left out and how to add it.
    """
    if requested(strategies):
        if not supports(profile):
            raise InputError(f"{STRATEGY_NAME} needs a profile with the reference tasks "
                             f"({', '.join(sorted(REFERENCE_TASKS))}); {profile.name} has {list(profile.tasks)}")
        if not classifier_ready():
            from sprout_core.tasks import classifier as tc

            tc.reference_classifier(progress=progress)
        return None
    all_ = strategies is None or strategies == "all" or (not isinstance(strategies, str) and list(strategies) == ["all"])
    if all_ and supports(profile) and not classifier_ready():
        return (f"{STRATEGY_NAME} left out: the task classifier is not trained yet. Train it once with "
                "`python -m sprout_core classify --report` (a few minutes) or name the strategy explicitly.")
    return None


@dataclass(frozen=True)
class TaskReplay:
    """SPROUT-TASK over a window: ``x`` ``[H, P, L]`` per predicted task, the effective level shares
    ``x_eff`` ``[H, L]`` and per-level mean cost ``cost_eff`` ``[H, L]`` (g/request) of what was served,
    delivered carbon ``[H]`` (g/request), delivered and promised quality ``[H]`` (fractions of the
    true and of the evaluator's q_0), and ``feasible`` ``[H]``."""

    x: np.ndarray
    x_eff: np.ndarray
    cost_eff: np.ndarray
    carbon_g: np.ndarray
    quality: np.ndarray
    promised: np.ndarray
    feasible: np.ndarray
    quality_task: np.ndarray | None = None


def shrink_task_q(q_task: np.ndarray, n_task: np.ndarray, q_pooled: np.ndarray, prior_prompts: float) -> np.ndarray:
    """Per-task win shares shrunk toward the pooled ones: ``(n_t q_t + κ q_pool) / (n_t + κ)``.

    ``q_task`` ``[..., T, L]``, ``n_task`` ``[..., T]`` verdicts per task behind them, ``q_pooled``
    ``[..., L]``, ``prior_prompts`` κ ≥ 0 (0 = no shrinkage). With ~80 verdicts per task per evaluator
    run the raw per-task shares are noisy, and an LP that picks the levels that *look* best overstates
    the quality it will deliver (the winner's curse); shrinking guards against that.
    """
    if prior_prompts <= 0:
        return np.asarray(q_task, dtype=float)
    n = np.asarray(n_task, dtype=float)[..., None]
    return (n * q_task + prior_prompts * np.asarray(q_pooled)[..., None, :]) / (n + prior_prompts)


def replay_per_task(cost_task: np.ndarray, weights: np.ndarray, q_lp_task: np.ndarray, q_true_task: np.ndarray,
                    theta: np.ndarray, cond: np.ndarray | None, score_cond: np.ndarray | None = None,
                    margin: np.ndarray | float = 0.0) -> TaskReplay:
    """The per-task policy over ``H`` hours and its delivered carbon and quality on the true tasks.

    ``cost_task`` ``[H, T, L]`` g/request; ``weights`` ``[H, T]``; ``q_lp_task`` ``[H, T, L]`` the
    per-task win shares the LP sees (e.g. the evaluator's, shrunk); ``q_true_task`` ``[H, T, L]`` the
    hour's true ones; ``theta`` ``[H]`` floors (fractions of q_0); ``cond`` ``[T, L, P]`` or ``[T, P]``
    prediction behaviour the policy plans with (``None`` = labels known); ``score_cond`` the behaviour
    used to score what is delivered (default: ``cond``); ``margin`` ``[H]`` added to the right-hand side
    (win-share units; the promise's safety margin, see :func:`promise_margin`).
    """
    H, T, L = cost_task.shape
    R = theta * np.einsum("ht,ht->h", weights, q_lp_task[..., 0]) + margin
    Wp, cp, qp = lp.aggregate_through_confusion(weights, cost_task, q_lp_task, cond)
    sweep = lp.solve_per_task_exact(cp, qp, Wp, R)
    x = sweep.x
    if not sweep.feasible.all():  # θ ≤ 1 keeps it feasible; be safe: serve L0 rather than NaN
        x = x.copy()
        x[~sweep.feasible] = np.eye(L)[0]
    rep = _score(x, cost_task, weights, q_true_task, cond if score_cond is None else score_cond)
    with np.errstate(invalid="ignore", divide="ignore"):
        promised_win = np.einsum("hp,hpl,hpl->h", Wp, qp, x)
        q0_lp = np.einsum("ht,ht->h", weights, q_lp_task[..., 0])
        promised = np.where(q0_lp > 0, promised_win / q0_lp, np.nan)
    return TaskReplay(x, rep.x_eff, rep.cost_eff, rep.carbon_g, rep.quality, promised, sweep.feasible, rep.quality_task)


def _score(x: np.ndarray, cost_task: np.ndarray, weights: np.ndarray, q_true_task: np.ndarray,
           cond: np.ndarray | None) -> TaskReplay:
    """What per-predicted-task mixes ``x [H, P, L]`` deliver on the true tasks under prediction behaviour ``cond``."""
    H, T, L = cost_task.shape
    carbon, win, served = lp.delivered_on_true_tasks(x, weights, cost_task, q_true_task, cond)
    q0_true = np.einsum("ht,ht->h", weights, q_true_task[..., 0])
    x_eff = np.einsum("ht,htl->hl", weights, served)
    K = lp.conditional_from_confusion(np.eye(T), L) if cond is None else np.asarray(cond, dtype=float)
    if K.ndim == 2:
        K = lp.conditional_from_confusion(K, L)
    with np.errstate(invalid="ignore", divide="ignore"):
        cost_eff = np.where(x_eff > 1e-15, np.einsum("ht,htl,htl->hl", weights, served, cost_task) / x_eff,
                            np.einsum("ht,htl->hl", weights, cost_task))
        quality = np.where(q0_true > 0, win / q0_true, np.nan)
        win_t = np.einsum("htl,tlp,hpl->ht", q_true_task, K, x)
        q_task = np.where(q_true_task[..., 0] > 0, win_t / q_true_task[..., 0], np.nan)
    nan = np.full(H, np.nan)
    return TaskReplay(x, x_eff, cost_eff, carbon, quality, nan, np.ones(H, dtype=bool), q_task)


def promise_margin(x: np.ndarray, weights: np.ndarray, q_task: np.ndarray, n_task: np.ndarray, n_requests: np.ndarray,
                   theta: np.ndarray, cond: np.ndarray | None, z: float, per_request: bool = False,
                   n_pool: np.ndarray | None = None) -> np.ndarray:
    """``z·sd`` of the pooled slack ``Σ_t w_t (Σ_i served_{t,i} q_{t,i} − θ·q_{t,0})`` of per-predicted-task mixes
    ``x [H, P, L]``: each task's estimate (``n_task`` verdicts) and its share of the hour's ``n_requests`` are
    samples (the calibrated promise of :mod:`sprout_core.quality`, for one mix per task)."""
    if z <= 0:
        return np.zeros(x.shape[0])
    H, T, L = q_task.shape
    K = lp.conditional_from_confusion(np.eye(T), L) if cond is None else np.asarray(cond, dtype=float)
    if K.ndim == 2:
        K = lp.conditional_from_confusion(K, L)
    served = np.einsum("htp,hpl->htl", np.stack([lp._p_given_t(q_task[h], K) for h in range(H)]), x)
    a = served.copy()
    a[..., 0] -= theta[:, None]
    var_one = np.einsum("htl,htlk,htk->ht", a, qmod.share_cov(q_task), a)
    inv_est = 1.0 / np.maximum(n_task, 1.0)
    if n_pool is not None:   # the judged prompts are a finite sample of the users' (quality.slack_variance)
        inv_est = inv_est + 2.0 / np.maximum(np.asarray(n_pool, dtype=float), 1.0)[None, :]
    v_req = var_one + ((served * (1.0 - served) * q_task).sum(axis=-1) if per_request else 0.0)
    var = (weights ** 2 * var_one * inv_est).sum(axis=1) + (weights * v_req).sum(axis=1) / np.maximum(n_requests, 1.0)
    return z * np.sqrt(np.maximum(var, 0.0))


def sprout_task_served(ctx):
    """SPROUT-TASK over a replay window: ``(replay, note)``, what it served (``x_eff``, ``cost_eff``,
    ``quality``, ``quality_task``) and a note (:mod:`sprout_core.strategies.task` registers it and turns it
    into a ``StrategyOutput``, so this module needs nothing from the strategies package).

    Plans with the misclassification model of one half of the held-out judged prompts and scores what it
    delivers with the other half's; with ``cfg.per_task_floor`` every true task keeps θ of its own
    always-L0 quality (:func:`sprout_core.tasks.lp.per_task_mixes_with_task_floors`)."""
    pm_plan, pm_score = reference_prediction_models(ctx.profile)
    ev = ctx.evaluator()
    q_lp = shrink_task_q(ev.q_lp_task, ev.n_task, ev.q_lp, SHRINK_PRIOR_PROMPTS)
    cost_task = ctx.cost_task()
    if ctx.cfg.per_task_floor:
        x = lp.per_task_mixes_with_task_floors(cost_task, ctx.weights, q_lp, ev.n_task, ctx.theta, ctx.z,
                                               ctx.measured, pm_plan.cond, ctx.per_request(), ctx.pool_n)
        rep = _score(x, cost_task, ctx.weights, ctx.q_true_task, pm_score.cond)
        floor = "; per-task floor: every task keeps θ of its own always-L0 quality"
    else:
        # the promise at ctx.cfg.confidence: raise the floor by z·sd of the plan's slack, re-solve (3 rounds settle it)
        margin = np.zeros(ctx.H)
        for _ in range(3 if ctx.z > 0 else 1):
            rep = replay_per_task(cost_task, ctx.weights, q_lp, ctx.q_true_task, ctx.theta, pm_plan.cond,
                                  score_cond=pm_score.cond, margin=margin)
            margin = promise_margin(rep.x, ctx.weights, q_lp, ev.n_task, ctx.measured, ctx.theta, pm_plan.cond, ctx.z,
                                    ctx.per_request(), ctx.pool_n)
        floor = f"; quality promise kept with confidence {ctx.cfg.confidence:g}" if ctx.z > 0 else ""
    note = (f"task classifier: held-out accuracy {100 * pm_score.accuracy:.1f}% on {pm_score.n_prompts} judged prompts "
            f"(planned with a disjoint half of {pm_plan.n_prompts}); predictions applied, cost and quality follow "
            f"the true task; per-task q shrunk toward the pooled q with κ = {SHRINK_PRIOR_PROMPTS:g} prompts{floor}")
    if ctx.per_request():
        # each request is predicted a task (the scoring half's behaviour given its true task and best level) and
        # draws its level from that task's mix: its mix is Σ_p P(p | t, w)·x_p
        T, L = ctx.q_true_task.shape[1:]
        K = pm_score.cond if pm_score.cond is not None else lp.conditional_from_confusion(np.eye(T), L)
        quality, quality_task = ctx.realised(np.einsum("twp,hpl->htwl", K, rep.x))
        rep = dataclasses.replace(rep, quality=quality, quality_task=quality_task)
    return rep, note
