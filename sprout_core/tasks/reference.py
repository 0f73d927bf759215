"""Per-task costs and quality of the reference profile (Sprout paper, Llama-2-13B-chat on an A100).

A small, self-contained reader of ``llama2-13b-a100/requests.csv`` and ``judgments.csv`` giving, per
task and directive level, the mean GPU energy per request (kWh), the mean time per request (s) and
the GPT-4 win share q (share of the task's judged prompts whose best answer came from that level).
Label for every figure derived from it: ``reference:sprout-paper``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from sprout_core.paths import public_file

METHOD = "reference:sprout-paper"
LEVELS = ("L0", "L1", "L2")
#: Embodied carbon of the paper's A100 server share (g) over a 5-year life (s): k_emb in g/s.
PAPER_EMBODIED_G = 26_356.568
PAPER_LIFETIME_S = 5 * 365 * 24 * 3600
PAPER_K_EMB_G_PER_S = PAPER_EMBODIED_G / PAPER_LIFETIME_S


@dataclass(frozen=True)
class TaskTable:
    """Per task (rows) and level (columns): ``energy_kwh`` kWh/request, ``time_s`` s/request,
    ``quality`` win share (rows sum to 1), ``n_prompts`` measured and ``n_judged`` judged prompts per task."""

    tasks: tuple[str, ...]
    levels: tuple[str, ...]
    energy_kwh: np.ndarray
    time_s: np.ndarray
    quality: np.ndarray
    n_prompts: np.ndarray
    n_judged: np.ndarray
    method: str = METHOD

    def uniform_weights(self) -> np.ndarray:
        """Equal share for every task."""
        return np.full(len(self.tasks), 1.0 / len(self.tasks))


@lru_cache(maxsize=1)
def reference_task_table() -> TaskTable:
    """Read the reference per-task table (``MissingDataError`` when the public files are absent)."""
    import pandas as pd

    req = pd.read_csv(public_file("llama2-13b-a100", "requests.csv"))
    jud = pd.read_csv(public_file("llama2-13b-a100", "judgments.csv"))
    req = req[req["variant"].isin(LEVELS)]
    tasks = tuple(sorted(set(req["task"]) & set(jud["task"])))
    means = req.groupby(["task", "variant"])[["energy_kwh", "time_s"]].mean()
    e = np.array([[means.at[(t, l), "energy_kwh"] for l in LEVELS] for t in tasks])
    tm = np.array([[means.at[(t, l), "time_s"] for l in LEVELS] for t in tasks])
    shares = jud.groupby("task")["winner"].value_counts(normalize=True)
    q = np.array([[float(shares.get((t, l), 0.0)) for l in LEVELS] for t in tasks])
    n_prompts = np.array([req[(req["task"] == t) & (req["variant"] == "L0")].shape[0] for t in tasks])
    n_judged = np.array([int((jud["task"] == t).sum()) for t in tasks])
    return TaskTable(tasks, LEVELS, e, tm, q, n_prompts, n_judged)
