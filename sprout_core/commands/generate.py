"""``python -m sprout_core generate``: answer one prompt under each directive level."""
from __future__ import annotations

import argparse
import json
import sys

from sprout_core import carbon, store
from sprout_core import validate as V
from sprout_core.backends import add_backend_args, choice_from_args, meter_for, open_backend
from sprout_core.directives import load_directive_set
from sprout_core.energy import BACKENDS, CPU_PRESETS
from sprout_core.errors import InputError, UnknownNameError
from sprout_core.generation import MAX_PROMPT_CHARS, GenerationParams, check_prompt, prepare_inputs
from sprout_core.metered import default_settings
from sprout_core.models import LoadedModel, plan_model
from sprout_core.run import ANSWER, CHUNK, START, Run, execute


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="answer a prompt under each directive level",
                       description="Answer one prompt under each directive level, one level after another, with the "
                                   "local model (transformers or llama.cpp, in process) or an OpenAI-compatible server.")
    p.add_argument("--prompt", required=True, type=V.arg_text(allow_empty=True),
                   help="the prompt text ('-' reads standard input, which must be UTF-8)")
    p.add_argument("--levels", default=None, help="comma-separated levels, e.g. L0,L1,L2 (default: all of the model's levels)")
    p.add_argument("--max-new-tokens", type=V.arg_whole(1, V.MAX_NEW_TOKENS), default=256,
                   help=f"cap on generated tokens per answer, 1–{V.MAX_NEW_TOKENS} (default 256)")
    p.add_argument("--model", default=None, help="'embedded' (default, or $SPROUT_MODEL) or a local model folder")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--dtype", default=None, help="float32, bfloat16 or float16 (default: bf16/fp16 on CUDA, float32 on CPU)")
    p.add_argument("--threads", type=V.arg_whole(1, V.MAX_THREADS), default=None,
                   help="torch threads, at least 1 (default: 1 on machines with ≤ 2 cores)")
    p.add_argument("--directive-set", default=None, help="directive set name in data/directives (default: the model's)")
    p.add_argument("--placement", choices=["system", "user"], default=None, help="where directives go (default: the model's)")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=V.arg_number(0, 5, lo_open=True), default=0.7, help="sampling temperature, (0, 5]")
    p.add_argument("--top-p", type=V.arg_number(0, 1, lo_open=True), default=0.9, help="nucleus mass, (0, 1]")
    p.add_argument("--seed", type=V.arg_whole(0, 2**32 - 1), default=0, help="sampling seed (default 0)")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per level")
    add_backend_args(p)
    # energy and carbon (issue 3)
    g = p.add_argument_group("energy and carbon")
    g.add_argument("--zone", default=None, type=V.arg_text(max_chars=64),
                   help="grid zone whose carbon intensity prices the energy (default $SPROUT_ZONE or US-TEX-ERCO, sprout_core.defaults)")
    g.add_argument("--year", type=V.arg_whole(1900, 2200), default=None, help="year of the zone's trace (default 2023, else the latest the zone has)")
    g.add_argument("--hour", type=V.arg_whole(0, 8783), default=None, help="hour of the year, 0-based UTC (default: the yearly mean)")
    g.add_argument("--ci", type=V.arg_number(0, 1000, unit="g CO2e/kWh"), default=None,
                   help="carbon intensity override, g CO2e/kWh (0-1000); wins over --zone")
    g.add_argument("--ci-column", choices=["direct", "lca"], default="direct", help="direct (operational, default) or life-cycle intensity")
    g.add_argument("--pue", type=V.arg_number(*V.PUE_RANGE), default=1.0,
                   help=f"data-centre PUE, {V.PUE_RANGE[0]:g}–{V.PUE_RANGE[1]:g} (default 1.0)")
    g.add_argument("--embodied", default="sprout-paper", help="embodied-carbon preset: sprout-paper (default), a100, h100, cpu-server")
    g.add_argument("--energy-backend", default=None, help="force a meter: nvml-counter, nvml-power, rapl, cpu-tdp or none (default: automatic)")
    g.add_argument("--cpu-power-model", default=None, help="CPU preset for the estimate (generic, laptop, amd-epyc-7763, …)")
    g.add_argument("--watts-per-core", type=V.arg_number(0, 1000, lo_open=True, unit="W"), default=None,
                   help="per busy core power for the CPU estimate, W")
    g.add_argument("--task", default=None, type=V.arg_text(max_chars=100), help="task label stored with each request (e.g. qa, math)")
    g.add_argument("--no-store", action="store_true", help="do not record the requests in the history database")
    p.set_defaults(func=run)


def _carbon_settings(args: argparse.Namespace):
    """CarbonSettings from the CLI flags, checked before any work (:func:`sprout_core.metered.default_settings`).

    An intensity the user asked for (``--zone``/``--year``/``--hour``) that cannot be found is an error; the
    default zone without data gives an unknown intensity (carbon n/a) and a warning."""
    asked = args.zone is not None or args.year is not None or args.hour is not None
    settings, warnings = default_settings(zone=args.zone, year=args.year, hour=args.hour, ci=args.ci,
                                          column=args.ci_column, pue=args.pue, embodied=_embodied(args.embodied),
                                          strict=asked)
    for w in warnings:
        print(f"warning: {w}. Use --ci to set one.", file=sys.stderr)
    return settings


def _embodied(name: str):
    try:
        return carbon.embodied_preset(name)
    except ValueError as exc:
        raise UnknownNameError(str(exc)) from None


def read_prompt(raw: str) -> str:
    """The ``--prompt`` value, or standard input for ``-`` (strict UTF-8), checked as text."""
    if raw == "-":
        raw = V.decode("standard input", sys.stdin.buffer.read())
    return V.text("The prompt", raw, max_chars=MAX_PROMPT_CHARS)


def check_meter_flags(args: argparse.Namespace) -> None:
    """UnknownNameError for an energy backend or CPU preset Sprout does not know (before any work)."""
    if args.energy_backend is not None:
        V.choice("energy backend", args.energy_backend, BACKENDS)
    if args.cpu_power_model is not None:
        V.choice("CPU power model", args.cpu_power_model, CPU_PRESETS)


def select_levels(args: argparse.Namespace, directive_set: str):
    dset = load_directive_set(args.directive_set or directive_set)
    return dset.select(V.name_list("--levels", args.levels, dset.names)) if args.levels is not None else list(dset.levels)


def run(args: argparse.Namespace) -> int:
    # 1. everything the user typed, before a model is loaded (or a server contacted)
    prompt = read_prompt(args.prompt)
    try:
        params = GenerationParams(max_new_tokens=args.max_new_tokens, do_sample=args.sample,
                                  temperature=args.temperature, top_p=args.top_p, seed=args.seed)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    choice = choice_from_args(args)
    directives = None
    if choice.kind != "server":  # a local model: its directive set is known without loading it
        plan = plan_model(choice.model, device=args.device, dtype=args.dtype, threads=args.threads)
        directives = select_levels(args, plan.directive_set)
    settings = _carbon_settings(args)
    check_meter_flags(args)
    # 2. the model (or the server), every level's prompt against its context, then generation
    lm = open_backend(choice)
    if directives is None:
        directives = select_levels(args, lm.info.directive_set)
    for d in directives:  # PromptError (e.g. longer than the context) before any answer
        if isinstance(lm, LoadedModel):
            prepare_inputs(lm, prompt, d, args.placement)
        else:
            check_prompt(prompt)
    try:
        meter = meter_for(lm, prefer=args.energy_backend, cpu_model=args.cpu_power_model, per_core_w=args.watts_per_core)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    run = Run(store.new_run_id(), prompt, [d.level for d in directives], task=args.task, params=params,
              directives=list(directives), origin="cli", placement=args.placement, save=not args.no_store)
    out = []
    # one turn of the model for every level (first come, first served by run, like the Playground)
    events = execute(run, lm, meter, settings, label="a generate command")
    try:
        for ev in events:
            if ev.kind == START and not args.json:
                print(f"\n=== {ev.level} — {ev.directive.text or 'no directive'} ===", flush=True)
            elif ev.kind == CHUNK and not args.json:
                print(ev.chunk.text, end="", flush=True)
            elif ev.kind == ANSWER:
                out.append(_report(ev.outcome, lm, settings, args))
    finally:
        events.close()  # Ctrl-C / SIGTERM: the answer in flight is stored as aborted before the exit
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
    return 1 if any(r["error"] for r in out) else 0


def _report(o, lm, settings, args) -> dict:
    """Print one finished answer's summary (unless ``--json``) and return its JSON object (the record)."""
    r = o.result
    if not args.json:
        tps = f"{r.tokens_per_s:.1f} tokens/s" if r.tokens_per_s else "n/a tokens/s"
        if r.partial:
            print("\n[partial answer: the stream was cut]", flush=True)
        print(f"\n[{r.new_tokens} new tokens, {r.total_s:.2f} s, {tps}, finish: {r.finish_reason}]", flush=True)
        if r.error:
            print(f"error in {r.level}: {r.error}", file=sys.stderr)
        en = o.reading.label() if o.reading.energy_j is None else f"{_fmt(o.reading.energy_j, 'J')} ({o.reading.method})"
        print(f"[energy {en}; carbon {_fmt(o.carbon.operational_g, 'g')} "
              f"operational + {_fmt(o.carbon.embodied_g, 'g')} embodied at {_fmt(settings.intensity.ci_g_per_kwh, 'g/kWh')} "
              f"({settings.intensity.label})]", flush=True)
    if o.store_error:
        print(f"warning: history: {o.store_error}", file=sys.stderr)
    for note in r.extra.get("usage_notes", ()):  # a server's implausible token counts, stored as unknown
        print(f"note: {r.level}: {note}", file=sys.stderr)
    row = o.record.as_row()  # the one record of the answer (sprout_core.record.AnswerRecord)
    row.update(model=lm.info.name, device=lm.info.device, dtype=lm.info.dtype)
    if r.backend == "server":
        row["server_url"] = lm.info.path
    return row


def _fmt(v: float | None, unit: str) -> str:
    return "n/a" if v is None else f"{v:.4g} {unit}"
