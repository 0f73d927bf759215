"""``python -m sprout_core classify``: predict a prompt's task, train or report a task classifier.

Examples::

    python -m sprout_core classify --prompt "What is 17 * 23?" --json
    python -m sprout_core classify --report --json             # held-out accuracy and confusion matrix
    python -m sprout_core classify --train my_prompts.csv --name mine   # CSV/JSONL: prompt, category
    python -m sprout_core classify --classifier mine --prompt "..."

The reference classifier (six tasks of the Sprout paper's prompts) is trained on first use — a few
minutes on a 2-core CPU, with a progress bar — and cached in the state folder (``SPROUT_STATE_DIR``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from sprout_core import validate as V
from sprout_core.generation import MAX_PROMPT_CHARS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="predict a prompt's task (alpaca, math, mmlu, …) or train a task classifier",
                       description="Task classifier: all-MiniLM-L6-v2 embeddings + logistic regression. "
                                   "Predicts the task of prompts, trains on your labelled prompts, reports accuracy.")
    p.add_argument("--prompt", action="append", default=[], type=V.arg_text(max_chars=MAX_PROMPT_CHARS),
                   help="prompt text to classify (repeatable)")
    p.add_argument("--classifier", default="reference",
                   help="which cached classifier to use: 'reference' (default; trained on first use) or a --name you trained")
    p.add_argument("--train", metavar="FILE", help="train a classifier on FILE (CSV or JSONL with columns prompt, category)")
    p.add_argument("--name", default="mine", type=V.arg_text(max_chars=64),
                   help="name to store a --train classifier under (default 'mine')")
    p.add_argument("--test-size", type=V.arg_number(0, 0.9, lo_open=True), default=0.2,
                   help="held-out share for --train, above 0 and at most 0.9 (default 0.2)")
    p.add_argument("--retrain", action="store_true", help="retrain the reference classifier even if one is cached")
    p.add_argument("--train-per-task", type=V.arg_whole(1, 1_000_000), default=None,
                   help="reference training prompts per task (default 600, from prompts without verdicts)")
    p.add_argument("--test-per-task", type=V.arg_whole(1, 1_000_000), default=None,
                   help="reference held-out judged prompts per task (default 500)")
    p.add_argument("--report", action="store_true", help="print the classifier's held-out accuracy and confusion matrix")
    p.add_argument("--seed", type=V.arg_whole(0, 2**32 - 1), default=0, help="seed for sampling and the split (default 0)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _progress(desc: str):
    from tqdm import tqdm

    bar = {"b": None}

    def cb(done: int, total: int) -> None:
        if total <= 0:
            return
        if bar["b"] is None:
            bar["b"] = tqdm(total=total, desc=desc, unit="prompt", file=sys.stderr)
        bar["b"].n = done
        bar["b"].refresh()
        if done >= total:
            bar["b"].close()

    return cb


def _print_report(clf, as_json: bool) -> None:
    if as_json:
        print(json.dumps(clf.to_dict(), indent=2))
        return
    print(f"classifier: {clf.source} · {len(clf.labels)} tasks · trained on {clf.n_train} prompts · "
          f"held-out accuracy {100 * clf.accuracy:.1f}% on {clf.n_test} prompts")
    w = max(len(l) for l in clf.labels) + 1
    print("confusion matrix (rows: true task, columns: predicted; counts)")
    print(" " * w + " ".join(f"{l[:9]:>9}" for l in clf.labels))
    for l, row in zip(clf.labels, clf.confusion_counts):
        print(f"{l:<{w}}" + " ".join(f"{int(v):>9d}" for v in row))


def run(args: argparse.Namespace) -> int:
    from sprout_core.paths import MissingDataError
    from sprout_core.tasks import classifier as tc

    try:
        if args.train:
            clf = tc.train_user_classifier(args.train, args.name, test_size=args.test_size, seed=args.seed,
                                           progress=None if args.json else _progress("embedding"))
            if not args.prompt:
                _print_report(clf, args.json)
                return 0
        elif args.classifier == tc.REFERENCE_NAME:
            kw = {"seed": args.seed}
            if args.train_per_task:
                kw["train_per_task"] = args.train_per_task
            if args.test_per_task:
                kw["test_per_task"] = args.test_per_task
            cached = None if args.retrain else tc.load_classifier(tc.REFERENCE_NAME)
            if cached is None:
                print("training the reference task classifier (first use; cached afterwards)…", file=sys.stderr)
                clf = tc.train_reference_classifier(progress=_progress("embedding"), **kw)
            else:
                clf = cached
        else:
            clf = tc.load_classifier(args.classifier)
            if clf is None:
                raise tc.LabelledDataError(f"no classifier named {args.classifier!r} is cached; train it with "
                                           f"`classify --train FILE --name {args.classifier}`")
        if args.report or not args.prompt:
            if not args.prompt:
                _print_report(clf, args.json)
                return 0
            _print_report(clf, False)
        t_load = time.perf_counter()
        tc.load_embedder()
        load_s = time.perf_counter() - t_load
        t0 = time.perf_counter()
        preds = clf.predict(args.prompt)
        secs = time.perf_counter() - t0
    except (MissingDataError, tc.LabelledDataError) as exc:  # EmbeddingModelMissing is a MissingDataError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        out = [{"prompt": p, "task": r.task, "probability": r.probability, "probabilities": r.probabilities,
                "classifier": args.name if args.train else args.classifier, "held_out_accuracy": clf.accuracy}
               for p, r in zip(args.prompt, preds)]
        print(json.dumps(out[0] if len(out) == 1 else out, indent=2))
        return 0
    for p, r in zip(args.prompt, preds):
        short = p if len(p) <= 60 else p[:57] + "…"
        others = ", ".join(f"{k} {100 * v:.0f}%" for k, v in sorted(r.probabilities.items(), key=lambda kv: -kv[1])[1:3])
        print(f"{r.task} ({100 * r.probability:.0f}%)  ← {short!r}   next: {others}")
    print(f"classified {len(preds)} prompt(s) in {secs * 1000:.0f} ms (embedding included; loading the embedding "
          f"model took {load_s:.1f} s); held-out accuracy {100 * clf.accuracy:.1f}%", file=sys.stderr)
    return 0
