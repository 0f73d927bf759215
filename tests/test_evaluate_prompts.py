"""Prompt sets: starter set, readers with bad-row reports, stratified and representative sampling."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sprout_core.evaluate.prompts import (
    PromptItem,
    gsm8k_final_number,
    load_prompt_set,
    parse_upload,
    sample_representative,
    sample_stratified,
)
from tests.conftest import public_data_available


def test_starter_set_shape():
    s = load_prompt_set("starter")
    assert len(s) >= 55 and not s.errors
    cats = s.categories()
    assert set(cats) == {"factual", "math", "multiple_choice", "writing", "coding", "advice"}
    for it in s.items:
        if it.category in ("math", "multiple_choice", "factual"):
            assert it.reference, it.id
        if it.category == "multiple_choice":
            assert it.reference in "ABCD" and f"{it.reference})" in it.prompt
        if it.category == "math":
            float(it.reference)
    assert len({it.id for it in s.items}) == len(s)


def test_jsonl_upload_reports_bad_rows_and_keeps_good():
    text = "\n".join([
        json.dumps({"prompt": "What is 2+2?", "reference": "4", "category": "math"}),
        "{not json",
        json.dumps({"reference": "x"}),
        json.dumps({"prompt": "   "}),
        json.dumps(["a list"]),
        json.dumps({"prompt": "Write a poem."}),
    ])
    s = parse_upload(text.encode(), "mine.jsonl")
    assert [it.prompt for it in s.items] == ["What is 2+2?", "Write a poem."]
    assert s.items[0].reference == "4" and s.items[0].category == "math"
    assert s.items[1].category == "general" and s.items[1].reference is None
    assert [e.row for e in s.errors] == [2, 3, 4, 5]
    assert "JSON" in s.errors[0].reason and "prompt" in s.errors[1].reason


def test_csv_upload_rows_and_missing_column():
    s = parse_upload("prompt,reference,category\nHi there,,chat\n,5,math\nSum 2 and 3,5,math\n", "p.csv")
    assert [it.prompt for it in s.items] == ["Hi there", "Sum 2 and 3"]
    assert s.items[0].reference is None and s.items[1].reference == "5"
    assert [e.row for e in s.errors] == [3]
    bad = parse_upload("question,answer\nx,y\n", "p.csv")
    assert not bad.items and "prompt" in bad.errors[0].reason
    assert parse_upload(b"\xff\xfe\x00", "p.jsonl").errors[0].row == 0
    assert "unsupported" in parse_upload("x", "p.txt").errors[0].reason


def test_duplicate_ids_reported():
    text = '{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n'
    s = parse_upload(text, "d.jsonl")
    assert len(s.items) == 1 and "duplicate" in s.errors[0].reason


def test_unknown_set_message():
    with pytest.raises(FileNotFoundError, match="starter"):
        load_prompt_set("no-such-set")


def test_gsm8k_final_number():
    assert gsm8k_final_number("so 3+4=7\n#### 1,234") == "1234"
    assert gsm8k_final_number("no answer") is None


def _items(spec):
    return [PromptItem(f"{c}-{i}", f"{c} prompt {i}", c) for c, k in spec.items() for i in range(k)]


def test_stratified_sampling_balanced_seeded():
    items = _items({"a": 10, "b": 10, "c": 2})
    s1 = sample_stratified(items, 9, seed=1)
    s2 = sample_stratified(items, 9, seed=1)
    assert s1 == s2 and len(s1) == 9
    cats = [it.category for it in s1]
    assert cats.count("c") == 2 and {cats.count("a"), cats.count("b")} <= {3, 4} and cats.count("a") + cats.count("b") == 7
    assert sample_stratified(items, 9, seed=2) != s1
    assert sample_stratified(items, 100, seed=0) == items
    assert sample_stratified(items, 0) == []


def test_representative_sampling_takes_cluster_centres():
    # three tight clusters in 2-D: one prompt each must be taken
    pts = {f"p{i}": v for i, v in enumerate([(0, 0), (0.1, 0), (0, 0.1), (10, 10), (10.1, 10), (-10, 5), (-10, 5.1)])}
    items = [PromptItem(k, k) for k in pts]
    got = sample_representative(items, 3, seed=0, embed=lambda texts: np.array([pts[t] for t in texts]))
    groups = [{"p0", "p1", "p2"}, {"p3", "p4"}, {"p5", "p6"}]
    assert len(got) == 3
    assert all(len(g & {it.id for it in got}) == 1 for g in groups)


@pytest.mark.skipif(not public_data_available("prompts"), reason="public prompt sets absent")
def test_public_readers():
    gsm = load_prompt_set("gsm8k")
    assert len(gsm) == 1319 and gsm.items[0].reference == "18" and not gsm.errors
    mt = load_prompt_set("mt-bench")
    assert len(mt) == 80 and len(mt.categories()) == 8
    assert len(load_prompt_set("vicuna-bench")) == 80
    ae = load_prompt_set("alpaca_eval")
    assert len(ae) == 805 and "CC BY-NC" in ae.license
