"""Profiles: per directive level and task, mean energy e (kWh/request), mean time t (s/request) and
quality q (win share: the fraction of judged prompts whose best answer came from that level).

Two sources:

* the **reference** profile, read from ``<public data>/llama2-13b-a100/`` (the Sprout paper's artifact:
  Llama-2-13B-chat on one A100, GPT-4 verdicts, the hourly task-mix trace) — method label
  ``reference:sprout-paper``;
* the project's **own** profile, from its request database (``store.py``) and evaluation verdicts, via
  :func:`profile_from_records`.

A q from elsewhere (the Evaluations page hands one over) replaces a profile's q via :meth:`Profile.with_q`.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from sprout_core import refdata
from sprout_core.errors import ProfileError
from sprout_core.paths import MissingDataError

REFERENCE_NAME = "llama2-13b-a100"
REFERENCE_LABEL = "reference: Llama-2-13B-chat on A100 (Sprout paper)"
REFERENCE_METHOD = "reference:sprout-paper"
#: The paper's embodied carbon: 26,356.568 g CO₂eq per GPU server share amortised over 5 years, g/s.
REFERENCE_EMBODIED_G = 26356.568
REFERENCE_LIFETIME_S = 5 * 365 * 24 * 3600
REFERENCE_K_EMB = REFERENCE_EMBODIED_G / REFERENCE_LIFETIME_S

#: Fewer judged prompts (or requests per level) than this makes an own profile "thin" (shown as a note).
MIN_REQUESTS_PER_LEVEL = 3
MIN_VERDICTS = 10


@dataclass(frozen=True, eq=False)
class Profile:
    """Per-level, per-task costs and quality.

    Arrays are ``[T, L]`` (tasks × levels): ``e_kwh`` mean energy per request (kWh), ``t_s`` mean time per
    request (s), ``q`` win share per level for each task (rows sum to 1). ``k_emb_g_per_s``: embodied
    carbon per device-second (g/s), ``None`` when unknown (then embodied is reported as n/a and the LP
    uses operational carbon only). ``task_trace``: hourly job counts (the task-mix trace) or ``None``.
    ``variant``: a model-choice profile (e.g. 13B vs 7B, no directives) for MODEL-OPT, or ``None``.
    """

    name: str
    label: str
    method: str
    levels: tuple[str, ...]
    tasks: tuple[str, ...]
    e_kwh: np.ndarray
    t_s: np.ndarray
    q: np.ndarray
    k_emb_g_per_s: float | None
    n_requests: np.ndarray
    n_judged: np.ndarray
    q_source: str = "profile"
    task_trace: np.ndarray | None = None
    variant: "Profile | None" = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def k_emb(self) -> float:
        """Embodied g/s for arithmetic (0.0 when unknown; the UI shows n/a then)."""
        return float(self.k_emb_g_per_s) if self.k_emb_g_per_s is not None else 0.0

    def default_weights(self) -> np.ndarray:
        """Equal task weights ``[T]``."""
        return np.full(len(self.tasks), 1.0 / len(self.tasks))

    def weights_from(self, mix: dict[str, float] | None) -> np.ndarray:
        """Normalised ``[T]`` weights from ``{task: weight}`` (missing tasks 0); equal weights for ``None``."""
        if not mix:
            return self.default_weights()
        unknown = sorted(set(mix) - set(self.tasks))
        if unknown:
            raise ProfileError(f"unknown task(s) {unknown}; this profile has {list(self.tasks)}")
        w = np.array([max(0.0, float(mix.get(t, 0.0))) for t in self.tasks])
        if w.sum() <= 0:
            raise ProfileError("the task mix needs at least one task with a positive weight")
        return w / w.sum()

    def under_mix(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(e [L] kWh, t [L] s, q [L])`` under task weights ``w [T]`` (or ``[H, T]`` → ``[H, L]`` each)."""
        w = np.asarray(w, dtype=float)
        return w @ self.e_kwh, w @ self.t_s, w @ self.q

    def with_q(self, q: dict[str, float], per_task: dict[str, dict[str, float]] | None = None,
               source: str = "handoff") -> "Profile":
        """A copy whose q comes from elsewhere: ``q`` (level → share) for every task, or ``per_task`` where
        given (tasks it lacks keep the pooled ``q``). Levels must match this profile's."""
        def row(d: dict[str, float]) -> np.ndarray:
            missing = [lv for lv in self.levels if lv not in d]
            if missing:
                raise ProfileError(f"q lacks level(s) {missing}; this profile has {list(self.levels)}")
            r = np.array([max(0.0, float(d[lv])) for lv in self.levels])
            if r.sum() <= 0:
                raise ProfileError("q shares must have a positive sum")
            return r / r.sum()

        pooled = row(q)
        newq = np.tile(pooled, (len(self.tasks), 1))
        if per_task:
            for k, t in enumerate(self.tasks):
                if t in per_task:
                    try:
                        newq[k] = row(per_task[t])
                    except ProfileError:
                        pass  # an unusable task row keeps the pooled q
        return replace(self, q=newq, q_source=source)

    def summary(self) -> pd.DataFrame:
        """A long table: task, level, e_wh (Wh/request), t_s, q, n_requests."""
        rows = []
        for k, t in enumerate(self.tasks):
            for i, lv in enumerate(self.levels):
                rows.append({"task": t, "level": lv, "e_wh": self.e_kwh[k, i] * 1000, "t_s": self.t_s[k, i],
                             "q": self.q[k, i], "n_requests": int(self.n_requests[k, i])})
        return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------- q hand-off

@dataclass(frozen=True)
class QHandoff:
    """Quality judged on the Evaluations page, handed to the Optimizer and What-if pages.

    ``counts``: verdict counts ``{task: {level: wins}}`` (valid verdicts only; the task ``"all"`` is
    never a key — pooled counts are the sum), so a receiver knows both the win shares and how many
    verdicts stand behind them (their sampling uncertainty). ``model``: the model whose answers were
    judged (``None`` when unknown or mixed); a receiver must not silently pair this q with another
    model's energy profile. ``judge``: who picked the winners. ``label``: what was selected.
    """

    label: str
    judge: str
    model: str | None
    levels: tuple[str, ...]
    counts: dict[str, dict[str, int]]

    @property
    def n(self) -> int:
        """Valid verdicts in all."""
        return int(sum(sum(c.values()) for c in self.counts.values()))

    @property
    def q(self) -> dict[str, float]:
        """Pooled win share per level."""
        tot = {lv: sum(c.get(lv, 0) for c in self.counts.values()) for lv in self.levels}
        n = sum(tot.values())
        if n <= 0:
            raise ProfileError("the hand-off has no valid verdicts")
        return {lv: tot[lv] / n for lv in self.levels}

    @property
    def per_task(self) -> dict[str, dict[str, float]] | None:
        """Win shares per task (tasks with at least one verdict), or ``None`` with a single task."""
        out = {}
        for task, c in self.counts.items():
            n = sum(c.get(lv, 0) for lv in self.levels)
            if n > 0:
                out[task] = {lv: c.get(lv, 0) / n for lv in self.levels}
        return out if len(out) > 1 else None

    def describe(self) -> str:
        who = f"answers of {self.model}" if self.model else "answers of an unnamed model"
        return f"{self.label} ({who}, judge {self.judge}, n = {self.n})"


# ----------------------------------------------------------------------------------------- reference

_LOCK = threading.Lock()
_REF_CACHE: dict[str, Profile] = {}


def load_reference(data_dir: Path | None = None) -> Profile:
    """The Sprout paper's Llama-2-13B-chat on A100 profile (cached per process; read through :mod:`refdata`).

    e and t are per-task means over every measured prompt (requests); q are per-task win shares over
    the GPT-4 3-way verdicts (judgments). The 7B variant (MODEL-OPT) pairs 13B-L0 with Llama-2-7B:
    its q comes from the artifact's only 13B-vs-7B verdicts (ScienceQA, invalid verdicts dropped) and is
    applied to every task — a stated simplification.
    """
    if not refdata.available(data_dir):
        refdata.requests(data_dir)  # raises MissingDataError naming the absent file
        refdata.judgments(data_dir)
    key = str(refdata.folder(data_dir))
    with _LOCK:
        if key in _REF_CACHE:
            return _REF_CACHE[key]
    req = refdata.requests(data_dir)
    jud = refdata.judgments(data_dir)
    levels = ("L0", "L1", "L2")
    tasks = tuple(sorted(req["task"].unique()))
    g = req.groupby(["task", "variant"]).agg(e=("energy_kwh", "mean"), t=("time_s", "mean"), n=("energy_kwh", "size"))

    def table(col: str, lvls) -> np.ndarray:
        return np.array([[float(g.loc[(t, lv), col]) for lv in lvls] for t in tasks])

    e, t, n = table("e", levels), table("t", levels), table("n", levels)
    wins = jud.groupby(["task", "winner"]).size().unstack(fill_value=0).reindex(index=list(tasks), columns=list(levels), fill_value=0)
    n_j = wins.sum(axis=1).to_numpy()
    if (n_j == 0).any():
        raise ProfileError(f"judgments.csv has no verdicts for {[tk for tk, m in zip(tasks, n_j) if m == 0]}")
    q = wins.to_numpy(dtype=float) / n_j[:, None]

    notes = [
        "Energy is GPU-only (NVML via carbontracker, PUE 1), batch size 1, vLLM bf16 on one A100.",
        "q: GPT-4 (gpt-4-0613) best-of-3 verdicts on 2,000 prompts per task.",
    ]
    variant = None
    if "7b" in set(req["variant"]):
        vlev = ("13B", "7B")
        ve = np.stack([e[:, 0], table("e", ["7b"])[:, 0]], axis=1)
        vt = np.stack([t[:, 0], table("t", ["7b"])[:, 0]], axis=1)
        vn = np.stack([n[:, 0], table("n", ["7b"])[:, 0]], axis=1)
        vq_row, vn_j = np.array([0.5, 0.5]), 0
        pv = refdata.judgments_7b(data_dir)
        if pv is not None:
            c13, c7 = int((pv["winner"] == "13b").sum()), int((pv["winner"] == "7b").sum())
            if c13 + c7 > 0:
                vq_row, vn_j = np.array([c13, c7], dtype=float) / (c13 + c7), c13 + c7
        variant = Profile(
            name=f"{REFERENCE_NAME}/13b-vs-7b", label="reference: Llama-2-13B vs 7B on A100 (Sprout paper)",
            method=REFERENCE_METHOD, levels=vlev, tasks=tasks, e_kwh=ve, t_s=vt, q=np.tile(vq_row, (len(tasks), 1)),
            k_emb_g_per_s=REFERENCE_K_EMB, n_requests=vn, n_judged=np.full(len(tasks), vn_j),
            notes=(f"13B-vs-7B q from {vn_j} ScienceQA pairwise GPT-4 verdicts, applied to every task "
                   "(the artifact has no other pairwise verdicts).",),
        )
    trace = refdata.task_mix(data_dir)
    prof = Profile(
        name=REFERENCE_NAME, label=REFERENCE_LABEL, method=REFERENCE_METHOD, levels=levels, tasks=tasks,
        e_kwh=e, t_s=t, q=q, k_emb_g_per_s=REFERENCE_K_EMB, n_requests=n, n_judged=n_j,
        q_source="GPT-4 verdicts (Sprout artifact)", task_trace=trace, variant=variant, notes=tuple(notes),
    )
    with _LOCK:
        _REF_CACHE[key] = prof
    return prof


# ----------------------------------------------------------------------------------------- own profile

def profile_from_records(requests: pd.DataFrame, verdicts: pd.DataFrame | None, name: str, energy_method: str,
                         k_emb_g_per_s: float | None = None, levels: tuple[str, ...] | None = None,
                         task_trace: np.ndarray | None = None, q: QHandoff | None = None) -> Profile:
    """A profile from the project's own records.

    ``requests``: columns ``level, task, energy_j, total_s`` (one row per served request; energy in J,
    time in s; a missing/empty task counts as ``"all"``; rows without a finite energy are skipped).
    ``verdicts``: columns ``task, winner`` (winner = a level name) or ``None``. ``energy_method``: the
    method label of the energies (e.g. ``measured:nvml-counter``, ``estimated:cpu-tdp``). ``q``: optional
    hand-off (:class:`QHandoff`) used when there are no verdicts.
    Per task, a level without requests takes the level's mean over all tasks; a task without verdicts
    takes the pooled win shares. Raises :class:`ProfileError` (plain words) when a level has no request
    at all, or when there are neither verdicts nor a hand-off q.
    """
    need = {"level", "task", "energy_j", "total_s"}
    if requests is None or len(requests) == 0:
        raise ProfileError("no requests recorded yet: run a few prompts at every directive level in the Playground")
    missing = need - set(requests.columns)
    if missing:
        raise ProfileError(f"requests table lacks columns {sorted(missing)}")
    r = requests.copy()
    r["task"] = r["task"].fillna("all").astype(str).replace("", "all")
    r["level"] = r["level"].astype(str)
    r["energy_j"] = pd.to_numeric(r["energy_j"], errors="coerce")
    r["total_s"] = pd.to_numeric(r["total_s"], errors="coerce")
    r = r[np.isfinite(r["energy_j"]) & np.isfinite(r["total_s"])]
    lv = tuple(levels) if levels else tuple(sorted(r["level"].unique()))
    if len(lv) < 2:
        raise ProfileError(f"need requests at two or more directive levels with a measured energy; have {list(lv)}")
    per_level = r.groupby("level").size().reindex(list(lv), fill_value=0)
    absent = [k for k, v in per_level.items() if v == 0]
    if absent:
        raise ProfileError(f"no requests with a measured energy at level(s) {absent}: run prompts at every level first")
    r = r[r["level"].isin(lv)]
    tasks = tuple(sorted(r["task"].unique()))
    g = r.groupby(["task", "level"]).agg(e=("energy_j", "mean"), t=("total_s", "mean"), n=("energy_j", "size"))
    gl = r.groupby("level").agg(e=("energy_j", "mean"), t=("total_s", "mean"))
    notes: list[str] = []
    e = np.zeros((len(tasks), len(lv)))
    t = np.zeros_like(e)
    n = np.zeros_like(e)
    for k, tk in enumerate(tasks):
        for i, l in enumerate(lv):
            if (tk, l) in g.index:
                e[k, i], t[k, i], n[k, i] = g.loc[(tk, l), "e"], g.loc[(tk, l), "t"], g.loc[(tk, l), "n"]
            else:
                e[k, i], t[k, i] = gl.loc[l, "e"], gl.loc[l, "t"]
                notes.append(f"task {tk!r} has no {l} requests: uses {l}'s mean over all tasks")
    e_kwh = e / 3.6e6
    thin = [l for l, v in per_level.items() if v < MIN_REQUESTS_PER_LEVEL]
    if thin:
        notes.append(f"few requests at {thin} (fewer than {MIN_REQUESTS_PER_LEVEL}): costs are rough")
    if k_emb_g_per_s is None:
        notes.append("embodied carbon: n/a (not included)")

    v = None
    if verdicts is not None and len(verdicts) > 0 and {"task", "winner"} <= set(verdicts.columns):
        v = verdicts.copy()
        v["task"] = v["task"].fillna("all").astype(str).replace("", "all")
        v = v[v["winner"].astype(str).isin(lv)]
        if len(v) == 0:
            v = None
    base = dict(name=name, label=f"own: {name} ({energy_method})", method=energy_method, levels=lv, tasks=tasks,
                e_kwh=e_kwh, t_s=t, k_emb_g_per_s=k_emb_g_per_s, n_requests=n, task_trace=task_trace)
    if v is None:
        if q is None:
            raise ProfileError("no evaluation verdicts yet: run an evaluation on the Evaluations page and send its "
                               "q to the Optimizer (or use the reference profile)")
        prof = Profile(q=np.full((len(tasks), len(lv)), 1.0 / len(lv)), n_judged=np.zeros(len(tasks)),
                       notes=tuple(notes), **base)
        return prof.with_q(q.q, q.per_task, source=f"Evaluations: {q.describe()}")
    pooled = v["winner"].value_counts().reindex(list(lv), fill_value=0).to_numpy(dtype=float)
    pooled = pooled / pooled.sum()
    qa = np.tile(pooled, (len(tasks), 1))
    n_j = np.zeros(len(tasks))
    for k, tk in enumerate(tasks):
        vv = v[v["task"] == tk]
        if len(vv):
            cnt = vv["winner"].value_counts().reindex(list(lv), fill_value=0).to_numpy(dtype=float)
            qa[k] = cnt / cnt.sum()
            n_j[k] = len(vv)
        else:
            notes.append(f"task {tk!r} has no verdicts: uses the pooled win shares")
    if len(v) < MIN_VERDICTS:
        notes.append(f"only {len(v)} verdicts (fewer than {MIN_VERDICTS}): q is very uncertain")
    return Profile(q=qa, n_judged=n_j, q_source=f"own evaluations ({len(v)} verdicts)", notes=tuple(notes), **base)


def available_profiles() -> list[str]:
    """Names the pages and CLI offer: the reference when its data is present, and ``own``."""
    out = [REFERENCE_NAME] if refdata.available() else []
    out.append("own")
    return out


def load_own(name: str = "own", q_handoff: QHandoff | None = None) -> Profile:
    """The project's own profile from its SQLite store (``sprout_core.store``) — see :func:`profile_from_records`.

    Costs: the requests table (the most common energy method only, never mixing measured and estimated).
    q: the store's verdicts when it has them, else ``q_handoff`` (from the Evaluations page).
    Embodied carbon uses ``carbon.DEFAULT_EMBODIED`` when that module is present. Raises
    :class:`ProfileError` with a plain note when the store is absent or holds too little data.
    """
    try:
        from sprout_core import store
    except ImportError as exc:
        raise ProfileError("the request database (sprout_core.store) is not available in this version yet") from exc
    reqs, verdicts, method = _own_records(store)
    trace = None
    try:
        trace = load_reference().task_trace
    except (MissingDataError, ProfileError, OSError):
        pass
    k_emb = None
    try:
        from sprout_core.carbon import DEFAULT_EMBODIED
        k_emb = float(DEFAULT_EMBODIED.g_per_s)
    except (ImportError, AttributeError):
        pass
    return profile_from_records(reqs, verdicts, name=name, energy_method=method, task_trace=trace,
                                k_emb_g_per_s=k_emb, q=q_handoff)


def _own_records(store) -> tuple[pd.DataFrame, pd.DataFrame | None, str]:
    """Read requests (and verdicts, when the store has them) defensively: the store's API is still landing."""
    fn = getattr(store, "query_requests", None)
    if not callable(fn):
        raise ProfileError("the request database offers no way to read requests yet")
    try:
        reqs = pd.DataFrame(fn())
    except Exception as exc:  # a locked or broken database must not break the page
        raise ProfileError(f"cannot read the request database: {exc}") from exc
    if len(reqs) == 0:
        raise ProfileError("no requests recorded yet: run a few prompts at every directive level in the Playground")
    if "error" in reqs.columns:
        reqs = reqs[reqs["error"].isna() | (reqs["error"].astype(str) == "")]
    if "task" not in reqs.columns:
        reqs["task"] = "all"
    method = "n/a"
    if "energy_method" in reqs.columns:
        known = reqs[reqs["energy_method"].notna() & (reqs["energy_method"].astype(str) != "n/a")]
        if len(known):
            method = str(known["energy_method"].value_counts().idxmax())
            reqs = known[known["energy_method"] == method]
    verdicts = None
    for fn_name in ("query_verdicts", "verdicts_frame", "query_judgments"):
        vf = getattr(store, fn_name, None)
        if callable(vf):
            try:
                verdicts = pd.DataFrame(vf())
            except Exception:
                verdicts = None
            break
    return reqs, verdicts, method


def load_profile(name: str, q_handoff: QHandoff | None = None) -> Profile:
    """A profile by name: ``llama2-13b-a100`` (reference) or ``own`` (``q_handoff`` feeds the own profile's q)."""
    if name == REFERENCE_NAME:
        return load_reference()
    if name == "own":
        return load_own(q_handoff=q_handoff)
    raise ProfileError(f"unknown profile {name!r}; choose one of {[REFERENCE_NAME, 'own']}")


def resolve_profile(choice: str, q_handoff: QHandoff | None = None, use_handoff: bool = False) -> tuple[Profile | None, list[str]]:
    """The profile a page should use, and plain-words notes to show.

    ``choice``: ``"reference"`` or ``"own"``. ``q_handoff``: the Evaluations page's :class:`QHandoff`;
    applied when ``use_handoff``. An own profile that is not
    ready falls back to the reference with a note; ``(None, notes)`` when nothing is available.
    """
    notes: list[str] = []
    hand = q_handoff if (use_handoff and q_handoff) else None
    ref: Profile | None = None
    try:
        ref = load_reference()
    except (MissingDataError, ProfileError, OSError) as exc:
        notes.append(f"Reference profile unavailable: {exc}")
    if choice == "own":
        try:
            own = load_own(q_handoff=hand)
            return own, notes + list(own.notes)
        except ProfileError as exc:
            notes.append(f"Your own profile is not ready yet: {exc}. Showing the reference profile instead.")
    if ref is None:
        return None, notes
    if hand:
        try:
            return ref.with_q(hand.q, hand.per_task, source=f"Evaluations: {hand.describe()}"), notes
        except ProfileError as exc:
            notes.append(f"The q from Evaluations does not fit this profile ({exc}); using the profile's own q.")
    return ref, notes
