"""``python -m sprout_core evaluate``: answer sampled prompts under each level, store, judge (resumable)."""
from __future__ import annotations

import argparse
import json
import statistics
import sys

from sprout_core.backends import add_backend_args, choice_from_args, open_backend
from sprout_core.errors import SproutError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="offline quality evaluation of directive levels",
        description="Answer N sampled prompts under every level with the local model, record tokens, time and "
                    "energy, store everything in SQLite and let a judge pick the best answer per prompt. "
                    "Re-running the same command resumes: stored answers are skipped, nothing is duplicated.")
    p.add_argument("--prompts", default="starter",
                   help="prompt set: starter, mt-bench, vicuna-bench, gsm8k, alpaca-eval, or a .jsonl/.csv path (default starter)")
    p.add_argument("--n", type=int, default=60, help="number of prompts to sample (default 60)")
    p.add_argument("--levels", default="L0,L1,L2", help="comma-separated levels (default L0,L1,L2)")
    p.add_argument("--judge", default="reference",
                   help="reference | llm (embedded model, mechanical only) | llm:/path/to/model | api:MODEL | none (default reference)")
    p.add_argument("--second-pass", action="store_true", help="LLM judge: a second pass in another order (position consistency)")
    p.add_argument("--seed", type=int, default=0, help="sampling and answer-order seed (default 0)")
    p.add_argument("--sampling", choices=["stratified", "representative"], default="stratified",
                   help="stratified by category, or representative (embedding clusters' centres)")
    p.add_argument("--model", default=None, help="'embedded' (default, or $SPROUT_MODEL) or a local model folder")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: 1 on machines with ≤ 2 cores)")
    p.add_argument("--directive-set", default=None, help="directive set (default: the model's)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="cap per answer, tokens (default 256)")
    p.add_argument("--export", default=None, metavar="PATH.jsonl",
                   help="after the run, write answers + verdicts to this JSONL (and a .meta.json next to it)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_backend_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sprout_core.evaluate import db
    from sprout_core.evaluate.judges import parse_judge
    from sprout_core.evaluate.results import export_run, run_summary
    from sprout_core.evaluate.runner import make_answer_fn, make_judge_chat, run_evaluation, sample_prompts
    from sprout_core.paths import MissingDataError

    levels = tuple(x.strip() for x in args.levels.split(",") if x.strip())
    if not levels:
        print("error: --levels is empty", file=sys.stderr)
        return 2
    if args.n < 1:
        print("error: --n must be at least 1", file=sys.stderr)
        return 2
    try:
        judge = None if args.judge.lower() == "none" else parse_judge(args.judge, second_pass=args.second_pass)
        from sprout_core.evaluate.prompts import load_prompt_set

        ps = load_prompt_set(args.prompts)
        for e in ps.errors[:20]:
            print(f"warning: {args.prompts} row {e.row} skipped: {e.reason}", file=sys.stderr)
        if len(ps.errors) > 20:
            print(f"warning: … and {len(ps.errors) - 20} more bad rows", file=sys.stderr)
        prompts = sample_prompts(args.prompts, args.n, args.seed, args.sampling)
    except (ValueError, FileNotFoundError, MissingDataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        lm = open_backend(choice_from_args(args))
    except (SproutError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from sprout_core.directives import load_directive_set

    dset_name = args.directive_set or lm.info.directive_set
    try:
        load_directive_set(dset_name).select(list(levels))
    except (KeyError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    if judge is not None and judge.note:
        print(f"note: judge {judge.name} is {judge.note}", file=sys.stderr)
    cfg = db.RunConfig(prompt_set=args.prompts, n=args.n, seed=args.seed, levels=levels,
                       judge=judge.name if judge else "none", model=lm.info.name, directive_set=dset_name,
                       sampling=args.sampling, max_new_tokens=args.max_new_tokens, second_pass=args.second_pass)
    answer_fn = make_answer_fn(lm, dset_name, args.max_new_tokens)
    chat = make_judge_chat(judge, lm) if judge else None
    bar = tqdm(total=len(prompts) * len(levels), unit="answer", desc="evaluate", file=sys.stderr)

    def progress(p):
        if bar.n != p.done:
            bar.update(p.done - bar.n)
        bar.set_postfix_str(f"judged {p.judged}/{len(prompts)}" + (f" · {p.current}" if p.current else ""), refresh=False)

    st = run_evaluation(cfg, prompts, answer_fn, judge, chat, progress=progress)
    bar.close()
    summary = run_summary(st.run_id)
    summary["resumed_answers"] = st.skipped
    if st.judge_seconds:
        summary["judge_seconds_per_prompt_median"] = statistics.median(st.judge_seconds)
    if args.export:
        paths = export_run(st.run_id, args.export, command=" ".join(["python -m sprout_core evaluate", *sys.argv[2:]]) if sys.argv[1:2] == ["evaluate"] else "")
        summary["exported"] = [str(p) for p in paths]
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
    else:
        print(f"run {st.run_id}: {st.done}/{st.total} answers ({st.skipped} were already stored), "
              f"{st.judged} prompts judged, {st.invalid} invalid verdicts")
        for lv, row in summary["levels"].items():
            e = f"{row['energy_j_mean']:.3g} J ({row['energy_method']})" if row["energy_j_mean"] is not None else "n/a"
            print(f"  {lv}: mean {row['new_tokens_mean']:.1f} new tokens, {row['total_s_mean']:.2f} s, energy {e}")
        for j, ws in summary["win_shares"].items():
            sh = ", ".join(f"{lv} {v * 100:.1f}%" if v is not None else f"{lv} n/a" for lv, v in ws["share"].items())
            print(f"  judge {j}: {sh} (n={ws['n_valid']}, invalid {ws['n_invalid']})")
    return 0
