"""What the pages show about task-aware directives (no streamlit here: data and Plotly figures only).

* :func:`per_task_view` — the Optimizer page's "per task" view: one mix per task next to the pooled mix
  at the same quality target, and the extra saving (percentage points of always-L0's carbon);
* :func:`per_task_figure` — those mixes as stacked bars;
* :func:`prompt_policy` — the Playground's line: a prompt's predicted task and the levels the per-task
  policy would serve it at a zone's hour.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from sprout_core import style
from sprout_core.optimizer import theta_from_xi
from sprout_core.tasks import lp

_log = logging.getLogger("sprout.tasks.views")

LEVEL_COLORS = list(style.LEVEL_PALETTE)  # kept for callers; the colour of a level comes from style.level_color


@dataclass(frozen=True)
class PerTaskView:
    """Pooled vs per-task decision at one CI (g/kWh) and floor θ (fraction of the pooled q_0).

    ``comparison`` holds both mixes and their g/request; ``confusion_used`` says whether the per-task
    mixes act on predicted tasks (held-out confusion matrix) or on known labels.
    """

    tasks: tuple[str, ...]
    levels: tuple[str, ...]
    weights: np.ndarray
    ci_g_per_kwh: float
    theta: float
    comparison: lp.PooledVsPerTask
    confusion_used: bool
    method: str

    def table(self):
        """Rows: task (and 'pooled'), share of requests, level shares (%)."""
        import pandas as pd

        rows = []
        for k, t in enumerate(self.tasks):
            row = {"mix": t, "share of requests (%)": 100 * float(self.comparison.per_task.predicted_share[k])}
            row.update({lv: 100 * float(v) for lv, v in zip(self.levels, self.comparison.per_task.x[k])})
            rows.append(row)
        pooled = {"mix": "pooled (one mix for all)", "share of requests (%)": 100.0}
        pooled.update({lv: 100 * float(v) for lv, v in zip(self.levels, self.comparison.pooled_x)})
        rows.append(pooled)
        return pd.DataFrame(rows)


def per_task_view(profile, weights, ci_g_per_kwh: float, theta: float, confusion: np.ndarray | None = None,
                  pue: float = 1.0) -> PerTaskView:
    """Solve the pooled and the per-task LP for ``profile`` under task ``weights`` at one CI.

    The target is SPROUT's: ``θ · q_0`` with ``q_0`` the pooled L0 win share under ``weights``.
    ``confusion`` (``[T, T]`` or ``[T, L, T]``) makes the per-task mixes act on predicted tasks.
    """
    w = np.asarray(weights, dtype=float)
    w = w / w.sum()
    q0 = float(w @ profile.q[:, 0])
    target = float(theta) * q0
    cmp_ = lp.compare_pooled_per_task(profile.tasks, profile.levels, profile.e_kwh, profile.t_s, profile.q, w,
                                      float(ci_g_per_kwh), profile.k_emb, target, confusion, pue=pue)
    return PerTaskView(tuple(profile.tasks), tuple(profile.levels), w, float(ci_g_per_kwh), float(theta), cmp_,
                       confusion is not None, profile.method)


def per_task_figure(view: PerTaskView):
    """Stacked bars: one bar per task (its mix) and the pooled mix beside them (share of requests, %)."""
    import plotly.graph_objects as go

    names = list(view.tasks) + ["pooled"]
    x = np.vstack([view.comparison.per_task.x, view.comparison.pooled_x[None, :]])
    fig = go.Figure()
    for i, lv in enumerate(view.levels):
        fig.add_trace(go.Bar(name=lv, x=names, y=100 * x[:, i], marker_color=style.level_color(lv, i),
                             text=[f"{v:.0%}" if v >= 0.05 else "" for v in x[:, i]], textposition="inside"))
    fig.update_layout(barmode="stack", title="One mix per task vs the pooled mix", yaxis_title="share of requests (%)",
                      yaxis_range=[0, 100], height=360, margin=dict(t=40, b=30), legend=dict(orientation="h", y=-0.2))
    return fig


@dataclass(frozen=True)
class PromptPolicy:
    """A prompt's predicted task (probability 0–1) and the level shares the per-task policy gives that task.

    ``level`` is the level with the largest share; ``x`` level → share; ``ci_g_per_kwh`` and ``theta`` the
    hour's intensity and floor; ``basis`` says where θ came from.
    """

    task: str
    probability: float
    probabilities: dict[str, float]
    level: str
    x: dict[str, float]
    ci_g_per_kwh: float
    theta: float
    basis: str

    def sentence(self) -> str:
        mix = ", ".join(f"{lv} {v:.0%}" for lv, v in sorted(self.x.items(), key=lambda kv: -kv[1]) if v > 0.005)
        return (f"Predicted task **{self.task}** ({self.probability:.0%}). At {self.ci_g_per_kwh:.0f} g CO₂eq/kWh "
                f"({self.basis}) the per-task policy serves {self.task} requests: {mix} → most likely **{self.level}**.")


def prompt_policy(clf, profile, prediction, ci_g_per_kwh: float, ci_min: float | None = None,
                  ci_max: float | None = None, xi: float = 0.1, theta_fixed: float = 0.95) -> PromptPolicy:
    """The level shares the per-task policy (uniform task mix, held-out confusion) gives ``prediction.task``.

    With a zone's yearly ``ci_min``/``ci_max`` the floor is SPROUT's ξ form; without them (a slider CI)
    it is the fixed ``theta_fixed``.
    """
    if ci_min is not None and ci_max is not None:
        theta = float(theta_from_xi(ci_g_per_kwh, ci_min, ci_max, xi))
        basis = f"ξ = {xi:g} within the zone's year, θ = {theta:.3f}"
    else:
        theta, basis = float(theta_fixed), f"fixed θ = {theta_fixed:.2f} (no zone range for a slider value)"
    if set(clf.labels) != set(profile.tasks):
        raise ValueError(f"the classifier's tasks {list(clf.labels)} are not the profile's {list(profile.tasks)}")
    order = [list(clf.labels).index(t) for t in profile.tasks]
    conf = clf.confusion[np.ix_(order, order)]
    view = per_task_view(profile, profile.default_weights(), ci_g_per_kwh, theta, conf)
    k = list(profile.tasks).index(prediction.task)
    row = view.comparison.per_task.x[k]
    x = {lv: float(v) for lv, v in zip(profile.levels, row)}
    return PromptPolicy(prediction.task, prediction.probability, dict(prediction.probabilities),
                        profile.levels[int(np.argmax(row))], x, float(ci_g_per_kwh), float(theta), basis)


def classifier_stamp() -> float:
    """Modification time of the cached reference classifier (0.0 when none): a cache key for pages."""
    from sprout_core.tasks import classifier as tc

    p = tc.classifier_path(tc.REFERENCE_NAME).with_suffix(".npz")
    return p.stat().st_mtime if p.exists() else 0.0


def can_train_reference() -> bool:
    """True when the public prompts needed to train the reference classifier are present."""
    from sprout_core import refdata

    return (refdata.folder() / "prompts.csv").exists() and refdata.available()


@dataclass(frozen=True)
class TaskLine:
    """What the Playground shows about a prompt's task: ``kind`` is ``"ok"``, ``"untrained"`` (a button
    may train the classifier), ``"missing"`` (no classifier and no data to train one) or ``"error"``."""

    kind: str
    text: str
    policy: PromptPolicy | None = None


def playground_task_line(prompt: str, clf, intensity, xi: float = 0.1) -> TaskLine:
    """The predicted task of ``prompt`` and the per-task policy's levels at the chosen zone and hour.

    ``clf``: the cached reference classifier or ``None``; ``intensity``: a
    :class:`sprout_core.carbon.IntensityChoice` (``ci_g_per_kwh``, ``zone``, ``year``). Never raises for
    missing data: it says what is missing instead.
    """
    if clf is None:
        if can_train_reference():
            return TaskLine("untrained", "The task classifier is not trained yet (once, a few minutes on a CPU; "
                                         "or run `python -m sprout_core classify --report`).")
        return TaskLine("missing", "No trained task classifier is cached and the public data it is trained on "
                                   "(llama2-13b-a100/prompts.csv) is missing, so the prompt's task cannot be predicted.")
    from sprout_core import profiles
    from sprout_core.paths import MissingDataError

    try:
        prof = profiles.load_reference()
    except (MissingDataError, profiles.ProfileError) as exc:
        pred = clf.predict(prompt)[0]
        return TaskLine("error", f"Predicted task **{pred.task}** ({pred.probability:.0%}); the per-task policy "
                                 f"needs the reference profile: {exc}")
    pred = clf.predict(prompt)[0]
    ci = getattr(intensity, "ci_g_per_kwh", None)
    if ci is None:
        return TaskLine("error", f"Predicted task **{pred.task}** ({pred.probability:.0%}); carbon intensity is "
                                 "unknown, so there is no hourly policy to show.")
    ci_min = ci_max = None
    zone, year = getattr(intensity, "zone", None), getattr(intensity, "year", None)
    if zone and year:
        try:
            from sprout_core import grid

            tr = grid.load_trace(zone, int(year))
            ci_min, ci_max = tr.min(), tr.max()
        except Exception as exc:  # noqa: BLE001 - a broken trace falls back to the fixed floor
            _log.warning("a broken trace falls back to the fixed floor: %s", exc)
            ci_min = ci_max = None
    try:
        pol = prompt_policy(clf, prof, pred, float(ci), ci_min, ci_max, xi=xi)
    except ValueError as exc:
        return TaskLine("error", f"Predicted task **{pred.task}** ({pred.probability:.0%}); {exc}")
    where = f" in {zone} {year}" if zone and year else ""
    return TaskLine("ok", pol.sentence() + f" (reference profile{where}; held-out accuracy {clf.accuracy:.0%})", pol)


def confusion_for(tasks, clf=None) -> np.ndarray | None:
    """The cached reference classifier's held-out confusion matrix in ``tasks`` order, or ``None`` when
    there is no classifier or its labels are not exactly these tasks (then the view assumes known labels)."""
    if clf is None:
        from sprout_core.tasks import classifier as tc

        clf = tc.load_classifier()
    if clf is None or set(clf.labels) != set(tasks):
        return None
    order = [list(clf.labels).index(t) for t in tasks]
    return clf.confusion[np.ix_(order, order)]
