"""Task classifier: labelled-file checks, training and held-out evaluation, caching, persistence, CLI."""
from __future__ import annotations

import json
import zlib

import numpy as np
import pandas as pd
import pytest

from sprout_core import embeddings
from sprout_core.tasks import classifier as tc
from tests.conftest import public_data_available

HAVE_PROMPTS = public_data_available("llama2-13b-a100", "prompts.csv")

MATH = [f"What is {a} plus {b}? Show your working." for a, b in
        [(3, 4), (12, 9), (7, 8), (25, 17), (6, 6), (41, 2), (13, 30), (8, 19), (99, 1), (14, 15), (5, 60), (33, 44)]]
COOK = [f"Give me a recipe for {d} with {i}." for d, i in
        [("soup", "leeks"), ("pie", "apples"), ("curry", "lentils"), ("bread", "rye flour"), ("salad", "beets"),
         ("stew", "beef"), ("cake", "carrots"), ("pasta", "pesto"), ("risotto", "mushrooms"), ("tart", "pears"),
         ("chili", "beans"), ("omelette", "spinach")]]
GEO = [f"What is the capital city of {c}?" for c in
       ["France", "Peru", "Kenya", "Japan", "Canada", "Norway", "Egypt", "Chile", "India", "Spain", "Ghana", "Nepal"]]


def small_table() -> pd.DataFrame:
    rows = [(p, "math") for p in MATH] + [(p, "cooking") for p in COOK] + [(p, "geography") for p in GEO]
    return pd.DataFrame(rows, columns=["prompt", "category"])


class FakeEmbedder:
    """Bag of words hashed into 384 dims (deterministic); counts the texts it is asked to embed."""

    def __init__(self):
        self.calls = 0

    def encode(self, texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False):
        self.calls += len(texts)
        out = np.zeros((len(texts), embeddings.DIM), np.float32)
        for r, t in enumerate(texts):
            for w in t.lower().replace("?", " ").replace(".", " ").split():
                out[r, zlib.crc32(w.encode()) % embeddings.DIM] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


# ---------------------------------------------------------------------------- labelled input
def test_read_labelled_csv_and_jsonl(tmp_path):
    df = small_table()
    csv = tmp_path / "p.csv"
    df.to_csv(csv, index=False)
    jl = tmp_path / "p.jsonl"
    jl.write_text("\n".join(json.dumps({"prompt": p, "category": c}) for p, c in df.itertuples(index=False)))
    for path in (csv, jl):
        got = tc.read_labelled(path)
        assert list(got.columns) == ["prompt", "category"]
        assert len(got) == len(df)
        assert set(got["category"]) == {"math", "cooking", "geography"}


@pytest.mark.parametrize("frame, message", [
    (pd.DataFrame({"text": ["a", "b"], "category": ["x", "y"]}), "missing column"),
    (pd.DataFrame({"prompt": ["a", "b", "c"], "category": ["x", "x", "x"]}), "at least two categories"),
    (pd.DataFrame({"prompt": ["a", "b", "c"], "category": ["x", "x", "y"]}), "at least 2 prompts"),
])
def test_bad_labelled_tables_say_what_is_wrong(frame, message):
    with pytest.raises(tc.LabelledDataError, match=message):
        tc.clean_labelled(frame, "upload.csv")


def test_blank_rows_are_dropped():
    df = pd.DataFrame({"prompt": ["  hi ", "", None, "yo", "a", "b"], "category": ["x", "x", "y", "y", "x", "y"]})
    out = tc.clean_labelled(df)
    assert out["prompt"].tolist() == ["hi", "yo", "a", "b"]


def test_missing_file_is_a_labelled_data_error(tmp_path):
    with pytest.raises(tc.LabelledDataError, match="No such file"):
        tc.read_labelled(tmp_path / "nope.csv")


# ---------------------------------------------------------------------------- training (fake embedder)
def test_training_reports_held_out_confusion_and_predicts():
    fake = FakeEmbedder()
    clf = tc.train_from_table(small_table(), test_size=0.25, seed=0, embedder=fake)
    assert clf.labels == ("cooking", "geography", "math")
    assert clf.n_test == 9 and clf.n_train == 27
    assert clf.confusion_counts.sum() == clf.n_test
    assert clf.confusion_counts.sum(axis=1).tolist() == [3, 3, 3]
    np.testing.assert_allclose(clf.confusion.sum(axis=1), 1.0)
    assert clf.accuracy >= 0.8
    pred = clf.predict("What is 71 plus 5? Show your working.", embedder=fake)[0]
    assert pred.task == "math"
    assert sum(pred.probabilities.values()) == pytest.approx(1.0)
    assert pred.probability == max(pred.probabilities.values())


def test_embedding_cache_avoids_re_embedding(tmp_path):
    fake = FakeEmbedder()
    texts = MATH[:5]
    a = tc.embed(texts, embedder=fake)
    assert fake.calls == 5
    b = tc.embed(texts + [COOK[0]], embedder=fake)
    assert fake.calls == 6  # only the new text
    np.testing.assert_allclose(a, b[:5])
    seen = []
    tc.embed(texts + COOK[:3], embedder=fake, progress=lambda d, n: seen.append((d, n)))
    assert seen[0] == (0, 2) and seen[-1] == (2, 2)


def test_save_load_roundtrip_gives_the_same_probabilities(tmp_path):
    fake = FakeEmbedder()
    clf = tc.train_from_table(small_table(), seed=1, embedder=fake)
    path = tc.classifier_path("mine")
    clf.save(path)
    back = tc.load_classifier("mine")
    assert back is not None and back.labels == clf.labels
    emb = tc.embed(GEO[:4], embedder=fake)
    np.testing.assert_allclose(back.proba_from_embeddings(emb), clf.proba_from_embeddings(emb))
    np.testing.assert_array_equal(back.confusion_counts, clf.confusion_counts)
    assert tc.load_classifier("other") is None


def test_binary_classifier_probabilities_match_sklearn():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5))
    y = np.where(X[:, 0] + 0.3 * rng.normal(size=40) > 0, "yes", "no")
    labels, coef, intercept = tc.fit_logistic(X, y)
    clf = tc.TaskClassifier(labels, coef, intercept, np.zeros((2, 2), int), 40, 0, "t")
    ref = LogisticRegression(C=10.0, max_iter=3000, random_state=0).fit(X, y)
    np.testing.assert_allclose(clf.proba_from_embeddings(X), ref.predict_proba(X), atol=1e-8)


# ---------------------------------------------------------------------------- real embedding model
def test_real_minilm_separates_a_small_labelled_set():
    clf = tc.train_from_table(small_table(), test_size=0.25, seed=0)
    assert clf.accuracy >= 0.8
    assert clf.predict("Which city is the capital of Italy?")[0].task == "geography"
    assert clf.predict("How do I bake a lemon cake with almonds?")[0].task == "cooking"


# ---------------------------------------------------------------------------- CLI
def test_cli_train_then_classify_json(tmp_path, capsys):
    from sprout_core.cli import main

    path = tmp_path / "labelled.csv"
    small_table().to_csv(path, index=False)
    assert main(["classify", "--train", str(path), "--name", "demo", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["labels"] == ["cooking", "geography", "math"]
    assert 0.0 <= report["accuracy"] <= 1.0
    assert main(["classify", "--classifier", "demo", "--prompt", "What is 10 plus 32?", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["task"] == "math"
    assert set(out["probabilities"]) == {"cooking", "geography", "math"}
    assert out["probability"] == pytest.approx(max(out["probabilities"].values()))


def test_cli_bad_inputs_exit_2_with_a_message(tmp_path, capsys):
    from sprout_core.cli import main

    bad = tmp_path / "bad.csv"
    pd.DataFrame({"text": ["a", "b"]}).to_csv(bad, index=False)
    assert main(["classify", "--train", str(bad), "--name", "x"]) == 2
    assert "missing column" in capsys.readouterr().err
    assert main(["classify", "--classifier", "nobody", "--prompt", "hi"]) == 2
    assert "no classifier named 'nobody'" in capsys.readouterr().err


# ---------------------------------------------------------------------------- reference data (when present)
@pytest.mark.skipif(not HAVE_PROMPTS, reason="reference prompts (llama2-13b-a100/prompts.csv) not present")
def test_reference_classifier_small_sample_beats_chance():
    clf = tc.train_reference_classifier(train_per_task=15, test_per_task=5, seed=0)
    assert set(clf.labels) == {"alpaca", "math", "mmlu", "naturalqa", "scienceqa", "triviaqa"}
    assert clf.n_test == 30
    assert clf.accuracy > 0.5  # chance is 1/6
    assert tc.load_classifier() is not None  # cached in the (test) state folder
    train, test = tc.reference_split(15, 5, 0)
    # the held-out prompts are judged ones, the training prompts never are
    assert test["judged"].all() and not train["judged"].any()
