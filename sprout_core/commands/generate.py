"""``python -m sprout_core generate``: answer one prompt under each directive level."""
from __future__ import annotations

import argparse
import json
import sys

from sprout_core.generation import GenerationParams, PromptError, stream_generate


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="answer a prompt under each directive level",
                       description="Answer one prompt under each directive level with the local model, one level after another.")
    p.add_argument("--prompt", required=True, help="the prompt text ('-' reads standard input)")
    p.add_argument("--levels", default=None, help="comma-separated levels, e.g. L0,L1,L2 (default: all of the model's levels)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="cap on generated tokens per answer (default 256)")
    p.add_argument("--model", default=None, help="'embedded' (default, or $SPROUT_MODEL) or a local model folder")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--dtype", default=None, help="float32, bfloat16 or float16 (default: bf16/fp16 on CUDA, float32 on CPU)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: 1 on machines with ≤ 2 cores)")
    p.add_argument("--directive-set", default=None, help="directive set name in data/directives (default: the model's)")
    p.add_argument("--placement", choices=["system", "user"], default=None, help="where directives go (default: the model's)")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-p", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per level")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sprout_core.directives import load_directive_set
    from sprout_core.models import ModelLoadError, load_model

    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    try:
        params = GenerationParams(max_new_tokens=args.max_new_tokens, do_sample=args.sample,
                                  temperature=args.temperature, top_p=args.top_p, seed=args.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not prompt.strip():
        print("error: the prompt is empty", file=sys.stderr)
        return 2
    try:
        lm = load_model(args.model, device=args.device, dtype=args.dtype, threads=args.threads)
    except (ModelLoadError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    dset = load_directive_set(args.directive_set or lm.info.directive_set)
    try:
        directives = dset.select(args.levels.split(",")) if args.levels else list(dset.levels)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    out = []
    for d in directives:
        try:
            stream = stream_generate(lm, prompt, d, params, args.placement)
        except PromptError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if not args.json:
            print(f"\n=== {d.level} — {d.text or 'no directive'} ===", flush=True)
        for chunk in stream:
            if not args.json:
                print(chunk.text, end="", flush=True)
        r = stream.result
        assert r is not None
        if not args.json:
            tps = f"{r.tokens_per_s:.1f} tokens/s" if r.tokens_per_s else "n/a tokens/s"
            print(f"\n[{r.new_tokens} new tokens, {r.total_s:.2f} s, {tps}, finish: {r.finish_reason}]", flush=True)
            if r.error:
                print(f"error in {d.level}: {r.error}", file=sys.stderr)
        row = r.to_dict()
        row.pop("extra", None)
        row.update(model=lm.info.name, device=lm.info.device, dtype=lm.info.dtype)
        out.append(row)
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
    return 1 if any(r["error"] for r in out) else 0
