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

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from sprout_core import refdata, store
from sprout_core.cache import KeyedCache
from sprout_core.carbon import DEFAULT_EMBODIED
from sprout_core.errors import ProfileError, StoreError
from sprout_core.optimizer import cost_per_request
from sprout_core.paths import MissingDataError

REFERENCE_NAME = "llama2-13b-a100"
REFERENCE_LABEL = "reference: Llama-2-13B-chat on A100 (Sprout paper)"
REFERENCE_METHOD = "reference:sprout-paper"
#: The model whose energy, time and verdicts the reference profile holds.
REFERENCE_MODEL = "Llama-2-13b-chat"
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
    model: str | None = None
    prompts: "PromptTable | None" = None
    paper_costs: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def k_emb(self) -> float:
        """Embodied g/s for arithmetic (0.0 when unknown; the UI shows n/a then)."""
        return float(self.k_emb_g_per_s) if self.k_emb_g_per_s is not None else 0.0

    def cost(self, ci: np.ndarray | float, weights: np.ndarray | None = None, pue: float = 1.0) -> np.ndarray:
        """g CO₂e per request per level at carbon intensity ``ci`` (g/kWh) and ``pue``: ``e·CI·PUE + k_emb·t``
        under task ``weights`` (``[T]`` or ``[H, T]``; ``None`` = equal) — the one cost formula, see
        :func:`sprout_core.carbon.grams_per_request`."""
        e, t, _ = self.under_mix(self.default_weights() if weights is None else weights)
        return cost_per_request(e, t, ci, self.k_emb, pue)

    @property
    def q_counts(self) -> np.ndarray:
        """Verdict counts behind ``q``, ``[T, L]`` (``q × n_judged``)."""
        return self.q * np.asarray(self.n_judged, dtype=float)[:, None]

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

    def with_handoff(self, h: "QHandoff", allow_other_model: bool = False) -> "Profile":
        """A copy whose q (and the verdict counts behind it) come from the Evaluations page.

        Refuses (:class:`ProfileError`) when the hand-off judged another model's answers than the one this
        profile's energy belongs to, unless ``allow_other_model`` — then both names go into ``q_source``."""
        if tuple(h.levels) != tuple(self.levels):
            missing = [lv for lv in self.levels if lv not in h.levels]
            if missing:
                raise ProfileError(f"q lacks level(s) {missing}; this profile has {list(self.levels)}")
        if not same_model(h.model, self.model):
            msg = (f"the q from Evaluations was judged on answers of {h.model or 'an unnamed model'}, but this "
                   f"profile's energy and time are of {self.model or 'an unnamed model'}")
            if not allow_other_model:
                raise ProfileError(msg + ": not combined. Pick the profile of the same model, or evaluate this model.")
        pooled = np.array([sum(c.get(lv, 0) for c in h.counts.values()) for lv in self.levels], dtype=float)
        if pooled.sum() <= 0:
            raise ProfileError("the hand-off has no valid verdicts")
        newq = np.tile(pooled / pooled.sum(), (len(self.tasks), 1))
        n_j = np.full(len(self.tasks), float(pooled.sum()))
        for k, t in enumerate(self.tasks):
            c = h.counts.get(t)
            if c:
                row = np.array([c.get(lv, 0) for lv in self.levels], dtype=float)
                if row.sum() > 0:
                    newq[k], n_j[k] = row / row.sum(), row.sum()
        src = f"Evaluations: {h.describe()}"
        if not same_model(h.model, self.model):
            src += f" — WARNING: combined with the energy of {self.model or 'an unnamed model'}"
        return replace(self, q=newq, n_judged=n_j, q_source=src, prompts=None)

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
        return replace(self, q=newq, q_source=source, prompts=None)

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


def _model_key(name: str | None) -> str:
    s = str(name or "").strip().replace("\\", "/").rstrip("/").split("/")[-1].lower()
    for suffix in ("-hf", "_hf"):
        if s.endswith(suffix):
            s = s[: -len(suffix)]
    return s


def same_model(a: str | None, b: str | None) -> bool:
    """Whether two model names denote the same model (folder paths, case and a ``-hf`` suffix ignored).
    Unknown (``None``/empty) never matches."""
    ka, kb = _model_key(a), _model_key(b)
    return bool(ka) and ka == kb


@dataclass(frozen=True, eq=False)
class PromptTable:
    """Per judged prompt: what serving it at each level costs and which level won.

    ``task [P]`` task index into the profile's tasks; ``winner [P]`` level index of the judge's pick;
    ``e_kwh [P, L]`` energy (kWh) and ``t_s [P, L]`` time (s) of its answer at each level. Used by the
    replay to draw an hour's actual requests (their verdicts and costs) and by the per-request ORACLE.
    """

    task: np.ndarray
    winner: np.ndarray
    e_kwh: np.ndarray
    t_s: np.ndarray

    def __len__(self) -> int:
        return int(self.task.shape[0])

    def pools(self, n_tasks: int) -> list[np.ndarray]:
        """Row indices of each task's prompts."""
        return [np.flatnonzero(self.task == k) for k in range(n_tasks)]


# ----------------------------------------------------------------------------------------- reference

_REF_CACHE: KeyedCache = KeyedCache("reference profile")


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

    def make() -> Profile:
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
        # per judged prompt: its verdict and its answers' energy and time at every level
        wide = req[req["variant"].isin(levels)].pivot_table(index=["task", "prompt_index"], columns="variant",
                                                            values=["energy_kwh", "time_s"], aggfunc="first")
        jj = jud.drop_duplicates(["task", "prompt_index"])
        jj = jj[jj["winner"].isin(levels) & jj["task"].isin(tasks)]
        idx = pd.MultiIndex.from_frame(jj[["task", "prompt_index"]])
        wide = wide.reindex(idx)
        ok = wide.notna().all(axis=1).to_numpy()
        jj, wide = jj[ok], wide[ok]
        ti = {tk: k for k, tk in enumerate(tasks)}
        li = {lv: i for i, lv in enumerate(levels)}
        table_p = PromptTable(task=jj["task"].map(ti).to_numpy(np.int16), winner=jj["winner"].map(li).to_numpy(np.int8),
                              e_kwh=wide["energy_kwh"][list(levels)].to_numpy(float),
                              t_s=wide["time_s"][list(levels)].to_numpy(float))
        # the authors' simulator draws prompt indices from range(5000) for every task (GSM8K's 5000–7472 unused)
        r5 = req[(req["prompt_index"] < 5000) & req["variant"].isin(levels)]
        g5 = r5.groupby(["task", "variant"]).agg(e=("energy_kwh", "mean"), t=("time_s", "mean"))
        paper = (np.array([[float(g5.loc[(tk, lv), "e"]) for lv in levels] for tk in tasks]),
                 np.array([[float(g5.loc[(tk, lv), "t"]) for lv in levels] for tk in tasks]))
        prof = Profile(
            name=REFERENCE_NAME, label=REFERENCE_LABEL, method=REFERENCE_METHOD, levels=levels, tasks=tasks,
            e_kwh=e, t_s=t, q=q, k_emb_g_per_s=REFERENCE_K_EMB, n_requests=n, n_judged=n_j,
            q_source="GPT-4 verdicts (Sprout artifact)", task_trace=trace, variant=variant, notes=tuple(notes),
            model=REFERENCE_MODEL, prompts=table_p, paper_costs=paper,
        )
        return prof

    return _REF_CACHE.get(key, make)


# ----------------------------------------------------------------------------------------- own profile

def profile_from_records(requests: pd.DataFrame, verdicts: pd.DataFrame | None, name: str, energy_method: str,
                         k_emb_g_per_s: float | None = None, levels: tuple[str, ...] | None = None,
                         task_trace: np.ndarray | None = None, q: QHandoff | None = None,
                         model: str | None = None, verdict_source: str = "own evaluations") -> Profile:
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
    who = f"{model}, " if model else ""
    base = dict(name=name, label=f"own: {who}{energy_method}", method=energy_method, levels=lv, tasks=tasks,
                e_kwh=e_kwh, t_s=t, k_emb_g_per_s=k_emb_g_per_s, n_requests=n, task_trace=task_trace, model=model)
    if v is None:
        if q is None:
            raise ProfileError("no evaluation verdicts in this project's database yet. The runs shipped with Sprout "
                               "(e.g. starter-smollm2-135m-reference) are read on the Evaluations page, not from the "
                               "database: open one there and press “Use this q in the Optimizer →”, or run an "
                               "evaluation (or use the reference profile).")
        prof = Profile(q=np.full((len(tasks), len(lv)), 1.0 / len(lv)), n_judged=np.zeros(len(tasks)),
                       notes=tuple(notes), **base)
        return prof.with_handoff(q, allow_other_model=model is None)
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
    return Profile(q=qa, n_judged=n_j, q_source=f"{verdict_source} ({len(v)} verdicts)", notes=tuple(notes), **base)


def available_profiles() -> list[str]:
    """Names the pages and CLI offer: the reference when its data is present, and ``own``."""
    out = [REFERENCE_NAME] if refdata.available() else []
    out.append("own")
    return out


@dataclass(frozen=True)
class OwnRecords:
    """What the project's database holds for one model: served requests (energy per answer) and the
    offline evaluator's verdicts on that model's answers."""

    model: str | None
    method: str
    requests: pd.DataFrame          # level, task, energy_j, total_s (one row per answer)
    verdicts: pd.DataFrame          # task, winner (pass 1, valid verdicts of one judge)
    judge: str | None
    models: tuple[str, ...]         # every model with measured answers (for the picker)


def own_records(model: str | None = None, judge: str | None = None, db_path=None) -> OwnRecords:
    """Read the own profile's inputs from the database: requests of the Playground/CLI *and* the evaluator's
    answers (one energy method, the most common one, never mixing measured and estimated), and the
    evaluator's verdicts on the same model's answers (``judge``: default the judge with most verdicts).

    ``model``: default the model with the most measured answers. Raises :class:`ProfileError` when the
    database is unreadable or holds no measured answer.
    """
    con = store.connect(db_path)
    try:
        reqs = pd.read_sql_query(
            "SELECT model, level, task, energy_j, total_s, energy_method FROM requests "
            "WHERE energy_j IS NOT NULL AND (error IS NULL OR error = '')", con)
        try:
            ans = pd.read_sql_query(
                "SELECT a.run_id, a.prompt_id, a.level, a.energy_j, a.total_s, a.energy_method, "
                "COALESCE(NULLIF(a.model, ''), r.model) AS model, p.category AS task "
                "FROM eval_answers a JOIN eval_runs r ON r.id = a.run_id "
                "LEFT JOIN eval_prompts p ON p.run_id = a.run_id AND p.prompt_id = a.prompt_id "
                "WHERE a.energy_j IS NOT NULL", con)
            ver = pd.read_sql_query(
                "SELECT j.run_id, j.prompt_id, j.judge, j.winner, r.model AS run_model, p.category AS task "
                "FROM eval_judgments j JOIN eval_runs r ON r.id = j.run_id "
                "LEFT JOIN eval_prompts p ON p.run_id = j.run_id AND p.prompt_id = j.prompt_id "
                "WHERE j.pass_no = 1 AND j.valid = 1 AND j.winner IS NOT NULL", con)
        except Exception as exc:  # noqa: BLE001 - evaluator tables not created yet
            if "no such table" not in str(exc):
                raise
            ans = pd.DataFrame(columns=["run_id", "prompt_id", "level", "energy_j", "total_s", "energy_method", "model", "task"])
            ver = pd.DataFrame(columns=["run_id", "prompt_id", "judge", "winner", "run_model", "task"])
    finally:
        con.close()
    rows = pd.concat([reqs[["model", "level", "task", "energy_j", "total_s", "energy_method"]],
                      ans[["model", "level", "task", "energy_j", "total_s", "energy_method"]]], ignore_index=True)
    rows = rows[rows["energy_method"].notna() & (rows["energy_method"].astype(str) != "n/a")]
    if len(rows) == 0:
        raise ProfileError("no requests with a measured or estimated energy recorded yet: run a few prompts at every "
                           "directive level in the Playground (or an evaluation)")
    rows["model"] = rows["model"].fillna("").astype(str)
    models = tuple(rows["model"].value_counts().index)
    chosen = model if model is not None else models[0]
    mine = rows.loc[np.array([same_model(m, chosen) or m == chosen for m in rows["model"]], dtype=bool)]
    if len(mine) == 0:
        raise ProfileError(f"no measured answers of model {chosen!r} in the database; it has {list(models)}")
    method = str(mine["energy_method"].value_counts().idxmax())
    mine = mine[mine["energy_method"] == method]
    ver = ver.loc[np.array([same_model(m, chosen) or m == chosen for m in ver["run_model"].fillna("")], dtype=bool)]
    if judge is None and len(ver):
        judge = str(ver["judge"].value_counts().idxmax())
    if judge is not None:
        ver = ver.loc[(ver["judge"] == judge).to_numpy(dtype=bool)]
    return OwnRecords(model=chosen or None, method=method, requests=mine.reset_index(drop=True),
                      verdicts=ver[["task", "winner"]].reset_index(drop=True), judge=judge, models=models)


def load_own(name: str = "own", q_handoff: QHandoff | None = None, model: str | None = None,
             judge: str | None = None, db_path=None) -> Profile:
    """The project's own profile: energy and time from its database, q from the evaluator's verdicts on the
    *same model's* answers (see :func:`own_records`), else from ``q_handoff`` when that judged the same model.

    Embodied carbon uses :data:`sprout_core.carbon.DEFAULT_EMBODIED`; the task-mix trace is the reference's
    when available. Raises :class:`ProfileError` with a plain note when the store holds too little data.
    """
    rec = own_records(model, judge, db_path)
    trace = refdata.task_mix() if refdata.available() else None
    verdicts = rec.verdicts if len(rec.verdicts) else None
    src = f"own evaluations of {rec.model or 'the model'} (judge {rec.judge})"
    return profile_from_records(rec.requests, verdicts, name=name, energy_method=rec.method, task_trace=trace,
                                k_emb_g_per_s=float(DEFAULT_EMBODIED.g_per_s), q=q_handoff, model=rec.model,
                                verdict_source=src)


def load_profile(name: str, q_handoff: QHandoff | None = None) -> Profile:
    """A profile by name: ``llama2-13b-a100`` (reference) or ``own`` (``q_handoff`` feeds the own profile's q)."""
    if name == REFERENCE_NAME:
        return load_reference()
    if name == "own":
        return load_own(q_handoff=q_handoff)
    raise ProfileError(f"unknown profile {name!r}; choose one of {[REFERENCE_NAME, 'own']}")


def resolve_profile(choice: str, q_handoff: QHandoff | None = None, use_handoff: bool = False,
                    allow_other_model: bool = False) -> tuple[Profile | None, list[str]]:
    """The profile a page should use, and plain-words notes to show.

    ``choice``: ``"reference"`` or ``"own"``. ``q_handoff``: the Evaluations page's :class:`QHandoff`;
    applied when ``use_handoff`` and it judged the same model as the profile's energy (else a note says why
    not, unless ``allow_other_model``). An own profile that is not ready falls back to the reference with a
    note; ``(None, notes)`` when nothing is available.
    """
    notes: list[str] = []
    hand = q_handoff if (use_handoff and q_handoff) else None
    prof: Profile | None = None
    if choice == "own":
        try:
            prof = load_own(q_handoff=hand)
            notes += list(prof.notes)
        except (ProfileError, StoreError) as exc:
            notes.append(f"Your own profile is not ready yet: {exc} Showing the reference profile instead.")
    if prof is None:
        try:
            prof = load_reference()
        except (MissingDataError, ProfileError, OSError) as exc:
            notes.append(f"Reference profile unavailable: {exc}")
            return None, notes
    if hand and not prof.q_source.startswith("Evaluations"):
        try:
            prof = prof.with_handoff(hand, allow_other_model=allow_other_model)
        except ProfileError as exc:
            notes.append(f"Not using the q from Evaluations: {exc} Using the profile's own q.")
        else:
            if not same_model(hand.model, prof.model):
                notes.append(f"Warning: q judged on {hand.model or 'an unnamed model'}'s answers is combined with "
                             f"the energy of {prof.model or 'an unnamed model'} — the decision mixes two models.")
    return prof, notes
