"""``python -m sprout_core evaluate``: answer sampled prompts under each level, store, judge (resumable)."""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from sprout_core import validate as V
from sprout_core.backends import add_backend_args, choice_from_args, open_backend
from sprout_core.errors import DataFileError, InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="offline quality evaluation of directive levels",
        description="Answer N sampled prompts under every level with the local model, record tokens, time and "
                    "energy, store everything in SQLite and let a judge pick the best answer per prompt. "
                    "Re-running the same command resumes: stored answers are skipped, nothing is duplicated.")
    p.add_argument("--prompts", default="starter",
                   help="prompt set: starter, mt-bench, vicuna-bench, gsm8k, alpaca-eval, or a .jsonl/.csv path (default starter)")
    p.add_argument("--n", type=V.arg_whole(1, 100_000), default=60, help="number of prompts to sample (default 60)")
    p.add_argument("--levels", default="L0,L1,L2", help="comma-separated levels (default L0,L1,L2)")
    p.add_argument("--judge", default="reference",
                   help="reference | llm (embedded model, mechanical only) | llm:/path/to/model | api:MODEL | none (default reference)")
    passes = p.add_mutually_exclusive_group()
    passes.add_argument("--second-pass", dest="second_pass", action="store_true", default=True,
                        help="LLM/API judge: judge each prompt twice, in two orders (the default; a pair that "
                             "disagrees counts as a tie, and the flip rate is reported)")
    passes.add_argument("--single-pass", dest="second_pass", action="store_false",
                        help="LLM/API judge: one pass only (half the judging cost; position bias not measured)")
    p.add_argument("--seed", type=V.arg_whole(0, 2**32 - 1), default=0, help="sampling and answer-order seed (default 0)")
    p.add_argument("--sampling", choices=["stratified", "representative"], default="stratified",
                   help="stratified by category, or representative (embedding clusters' centres)")
    p.add_argument("--model", default=None, help="'embedded' (default, or $SPROUT_MODEL) or a local model folder")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N")
    p.add_argument("--threads", type=V.arg_whole(1, V.MAX_THREADS), default=None,
                   help="torch threads, at least 1 (default: 1 on machines with ≤ 2 cores)")
    p.add_argument("--directive-set", default=None, help="directive set (default: the model's)")
    p.add_argument("--max-new-tokens", type=V.arg_whole(1, V.MAX_NEW_TOKENS), default=256,
                   help=f"cap per answer, tokens, 1–{V.MAX_NEW_TOKENS} (default 256)")
    p.add_argument("--retry-errors", action="store_true",
                   help="try again the answers an earlier run of the same settings stored as errors")
    p.add_argument("--export", default=None, metavar="PATH.jsonl",
                   help="after the run, write answers + verdicts to this JSONL (and a .meta.json next to it)")
    p.add_argument("--merge-votes", action="store_true",
                   help="operator: merge the class's blind votes (kept per visitor until now) into the shared "
                        "tables, print how many, and exit")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_backend_args(p)
    p.set_defaults(func=run)


def _check_export(path: str | None) -> None:
    """Fail before the run (not after hours of it) when ``--export`` cannot be written."""
    if not path:
        return
    V.text("--export", path)
    p = Path(path).expanduser()
    if p.is_dir():
        raise InputError(f"--export {p} is a folder; give a file name such as {p / 'run.jsonl'}")
    existed = p.exists()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise InputError(f"--export {p} cannot be written ({exc.strerror or exc}); pick another path") from None
    if not existed:
        p.unlink(missing_ok=True)


def run(args: argparse.Namespace) -> int:
    if args.merge_votes:
        from contextlib import closing

        from sprout_core.evaluate import db as eval_db

        with closing(eval_db.connect()) as con:
            n = eval_db.merge_votes(con)
        print(json.dumps({"merged_votes": n}) if args.json else f"{n} blind vote(s) merged into the shared tables")
        return 0
    from tqdm import tqdm

    from sprout_core.directives import load_directive_set
    from sprout_core.evaluate import db
    from sprout_core.evaluate.judges import parse_judge
    from sprout_core.evaluate.prompts import load_prompt_set
    from sprout_core.evaluate.results import export_run, run_summary
    from sprout_core.evaluate.runner import make_answer_fn, make_judge_chat, run_evaluation, sample_prompts
    from sprout_core.models import check_model_folder, plan_model

    # 1. everything the user typed, before a model is loaded (or a server contacted)
    judge = None if args.judge.strip().lower() == "none" else parse_judge(args.judge, second_pass=args.second_pass)
    if judge is not None and judge.kind == "human":
        raise InputError("--judge human: people give their verdicts in the app (Playground or Evaluations), not in a run")
    if judge is not None and judge.backend == "local" and judge.model != "embedded":
        check_model_folder(judge.model)
    _check_export(args.export)
    ps = load_prompt_set(args.prompts)
    for e in ps.errors[:20]:
        print(f"warning: {args.prompts} row {e.row} skipped: {e.reason}", file=sys.stderr)
    if len(ps.errors) > 20:
        print(f"warning: … and {len(ps.errors) - 20} more bad rows", file=sys.stderr)
    prompts = sample_prompts(args.prompts, args.n, args.seed, args.sampling)
    if len(prompts) < args.n:
        print(f"warning: {args.prompts} has only {len(prompts)} usable prompts; the run uses all of them, not {args.n}",
              file=sys.stderr)
    choice = choice_from_args(args)
    dset_name = None
    if choice.kind != "server":  # a local model: its directive set is known without loading it
        plan = plan_model(choice.model, device=args.device, threads=args.threads)
        dset_name = args.directive_set or plan.directive_set
        levels = tuple(V.name_list("--levels", args.levels, load_directive_set(dset_name).names))
    # 2. the model (or the server), then the run
    lm = open_backend(choice)
    if dset_name is None:
        dset_name = args.directive_set or lm.info.directive_set
        levels = tuple(V.name_list("--levels", args.levels, load_directive_set(dset_name).names))
    if judge is not None and judge.note:
        print(f"note: judge {judge.name} is {judge.note}", file=sys.stderr)
    cfg = db.RunConfig(prompt_set=args.prompts, n=args.n, seed=args.seed, levels=levels,
                       judge=judge.name if judge else "none", model=lm.info.name, directive_set=dset_name,
                       sampling=args.sampling, max_new_tokens=args.max_new_tokens, second_pass=args.second_pass)
    if args.retry_errors:
        con = db.connect()
        try:
            run_id = db.run_id_for_key(con, cfg.run_key(prompts))
            cleared = db.clear_errors(con, run_id) if run_id is not None else 0
        finally:
            con.close()
        print(f"retrying {cleared} answer(s) stored as errors", file=sys.stderr)
    answer_fn = make_answer_fn(lm, dset_name, args.max_new_tokens)
    chat = make_judge_chat(judge, lm) if judge else None
    bar = tqdm(total=len(prompts) * len(levels), unit="answer", desc="evaluate", file=sys.stderr)

    def progress(p):
        if bar.n != p.done:
            bar.update(p.done - bar.n)
        bar.set_postfix_str(f"judged {p.judged}/{len(prompts)}" + (f" · {p.current}" if p.current else ""), refresh=False)

    try:
        st = run_evaluation(cfg, prompts, answer_fn, judge, chat, progress=progress)
    finally:
        bar.close()
    summary = run_summary(st.run_id)
    summary["resumed_answers"] = st.skipped
    summary["generated_answers"] = st.generated
    summary["queued_answers_added"] = st.replayed
    con = db.connect()
    try:
        failed = db.answer_errors(con, st.run_id)
    finally:
        con.close()
    summary["failed_answers"] = failed
    summary["unjudged_prompts"] = st.unjudgeable
    if st.judge_seconds:  # both passes charged: per prompt, the sum over its passes
        summary["judge_seconds_per_prompt_median"] = statistics.median(st.judge_seconds)
    if judge is not None and judge.kind == "llm":
        known = [e for e in st.judge_energy_j if e is not None]
        summary["judge_passes"] = 2 if judge.second_pass else 1
        summary["judge_energy_j_per_prompt_median"] = statistics.median(known) if known and len(known) == len(st.judge_energy_j) else None
        summary["judge_energy_method"] = "+".join(sorted(st.judge_energy_methods)) or "n/a"
    if args.export:
        try:
            paths = export_run(st.run_id, args.export, command=" ".join(["python -m sprout_core evaluate", *sys.argv[2:]])
                               if sys.argv[1:2] == ["evaluate"] else "")
        except OSError as exc:
            raise DataFileError(f"The run is stored (run {st.run_id}), but --export {args.export} failed: "
                                f"{exc.strerror or exc}. Run the same command again with another --export path: "
                                "nothing is generated again.") from None
        summary["exported"] = [str(p) for p in paths]
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
    else:
        print(f"run {st.run_id}: {st.done}/{st.total} answers ({st.skipped} were already stored, {st.generated} generated "
              f"now{f', {st.replayed} added from the pending queue' if st.replayed else ''}), "
              f"{st.judged} prompts judged, {st.invalid} invalid verdicts")
        for lv, row in summary["levels"].items():
            e = f"{row['energy_j_mean']:.3g} J ({row['energy_method']})" if row["energy_j_mean"] is not None else "n/a"
            tok = f"{row['new_tokens_mean']:.1f}" if row["new_tokens_mean"] is not None else "n/a"
            sec = f"{row['total_s_mean']:.2f} s" if row["total_s_mean"] is not None else "n/a"
            print(f"  {lv}: mean {tok} new tokens, {sec}, energy {e}")
        for j, ws in summary["win_shares"].items():
            sh = ", ".join(f"{lv} {v * 100:.1f}%" if v is not None else f"{lv} n/a" for lv, v in ws["share"].items())
            print(f"  judge {j}: {sh} (n={ws['n_valid']}, invalid {ws['n_invalid']})")
        for j, fr in summary.get("flip_rate", {}).items():
            rate = "n/a" if fr["rate"] is None else f"{fr['rate'] * 100:.0f} %"
            print(f"  judge {j}: flip rate {rate} ({fr['flips']} of {fr['pairs']} prompts changed winner with the order)")
    for f in failed[:20]:
        print(f"warning: prompt {f['prompt_id']} at {f['level']} could not be answered: {f['error']}", file=sys.stderr)
    if failed:
        print(f"warning: {len(failed)} answer(s) are stored as errors and {st.unjudgeable} prompt(s) were not judged "
              "because of them; fix the prompts, or rerun with --retry-errors", file=sys.stderr)
        return 1
    return 0
