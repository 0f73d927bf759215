"""``python -m sprout_core gateway``: an OpenAI-compatible, carbon-aware gateway in front of a serving engine.

Example::

    python -m sprout_core serve &                                   # llama.cpp on the embedded model, :8081
    python -m sprout_core gateway --upstream http://127.0.0.1:8081/v1 --zone DE --port 8000
    curl -s http://127.0.0.1:8000/v1/chat/completions -d '{"messages":[{"role":"user","content":"Hi"}]}'

Every flag is checked before the server starts (exit 2 with the message). See docs/serving.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sprout_core import defaults
from sprout_core import validate as V
from sprout_core.errors import InputError, UnknownNameError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gateway", help="serve an OpenAI-compatible, carbon-aware gateway in front of an engine",
                       description="An OpenAI-compatible HTTP server (FastAPI + uvicorn) that gives each request a "
                                   "directive level from the hour's carbon-aware decision, meters or estimates its "
                                   "energy, and records it. Point any OpenAI client at it.")
    src = p.add_argument_group("upstream")
    src.add_argument("--upstream", default=None, type=V.arg_text(max_chars=500),
                     help="base URL of an OpenAI-compatible engine (vLLM, llama.cpp, Ollama …), e.g. http://127.0.0.1:8000/v1")
    src.add_argument("--model", default=None, choices=["embedded"],
                     help="'embedded': start llama.cpp's server on the embedded model and use it as the upstream")
    src.add_argument("--model-name", default=None, type=V.arg_text(max_chars=200),
                     help="the served model's name (default: the first the upstream lists)")
    src.add_argument("--server-api-key-env", default="SPROUT_SERVER_API_KEY",
                     help="environment variable with the upstream's API key (default SPROUT_SERVER_API_KEY)")
    src.add_argument("--timeout", type=V.arg_number(0, 3600, lo_open=True, unit="s"), default=120.0,
                     help="seconds to wait for the upstream's first byte or next byte (default 120)")
    net = p.add_argument_group("listening")
    net.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    net.add_argument("--port", type=V.arg_whole(1, 65535), default=8000, help="port (default 8000)")
    pol = p.add_argument_group("decision")
    pol.add_argument("--policy", default="sprout", help="sprout (default), sprout-task, fixed:L0, fixed:L1 or fixed:L2")
    pol.add_argument("--ci", type=V.arg_number(0, 2000, unit="g CO2e/kWh"), default=None,
                     help="a fixed carbon intensity, g CO2e/kWh (wins over the zone's trace)")
    pol.add_argument("--zone", default=defaults.default_zone(), type=V.arg_text(max_chars=64),
                     help=f"grid zone of the trace (or of the live source) (default $SPROUT_ZONE or "
                          f"{defaults.DEFAULT_ZONE}, sprout_core.defaults)")
    pol.add_argument("--year", type=V.arg_whole(1900, 2200), default=None, help="trace year (default: the zone's latest)")
    pol.add_argument("--ci-source", default=None, choices=["trace", "electricitymaps"],
                     help="trace (default) or electricitymaps (live, opt-in: token in $ELECTRICITYMAPS_API_TOKEN; "
                          "falls back to the trace, labelled)")
    pol.add_argument("--electricitymaps-url", default=None, help="Electricity Maps API base (default its v3 URL)")
    pol.add_argument("--xi", type=V.arg_number(0, 1), default=0.1, help="quality tolerance ξ (default 0.1)")
    pol.add_argument("--confidence", type=V.arg_number(0.5, 0.999999), default=0.9,
                     help="probability each hour keeps its quality floor, [0.5, 1) (default 0.9)")
    pol.add_argument("--profile", default="llama2-13b-a100", help="energy/quality profile (default llama2-13b-a100; or own)")
    pol.add_argument("--solver", choices=["exact", "pulp"], default="exact", help="exact (default) or pulp (c = 0.5 only)")
    pol.add_argument("--seed", type=V.arg_whole(0, 2**32 - 1), default=0, help="seed of the per-hour level draws (default 0)")
    pol.add_argument("--requests-per-hour", type=V.arg_number(0, 1e9, lo_open=True), default=None,
                     help="expected requests per hour for the promise (default: last hour's count)")
    car = p.add_argument_group("energy and carbon")
    car.add_argument("--pue", type=V.arg_number(*V.PUE_RANGE), default=1.0, help="data-centre PUE (default 1.0)")
    car.add_argument("--embodied", default="sprout-paper", help="embodied preset: sprout-paper (default), a100, h100, cpu-server")
    car.add_argument("--ci-column", choices=["direct", "lca"], default="direct", help="direct (default) or life-cycle intensity")
    car.add_argument("--energy", choices=["auto", "ecologits", "none"], default="auto",
                     help="auto: meter a local upstream, EcoLogits' estimate for a remote one (default)")
    car.add_argument("--ecologits-provider", default=None, help="EcoLogits provider of a hosted model (default: from the URL)")
    loop = p.add_argument_group("the loop and the store")
    loop.add_argument("--judge", default=None, help="judge for the evaluator: api:MODEL or upstream (default: no evaluator)")
    loop.add_argument("--eval-prompts", type=Path, default=None,
                      help="prompt set for the evaluator (one per line, or JSONL with prompt and task)")
    loop.add_argument("--n-eval", type=V.arg_whole(1, 10_000), default=20, help="prompts per evaluator run (default 20)")
    loop.add_argument("--store-prompts", action="store_true",
                      help="store prompt and answer text (default: not stored; the evaluator then needs --eval-prompts)")
    loop.add_argument("--no-store", action="store_true", help="do not record requests in the history database")
    lim = p.add_argument_group("limits")
    lim.add_argument("--max-body-bytes", type=V.arg_whole(1024, 100_000_000), default=1_000_000,
                     help="largest request body (default 1,000,000 bytes)")
    lim.add_argument("--max-tokens", type=V.arg_whole(1, V.MAX_NEW_TOKENS), default=4096,
                     help="largest max_tokens a client may ask for; the default for requests that give none (4096)")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    """The :class:`~sprout_core.gateway.config.GatewayConfig` from the flags (InputError before any work)."""
    from sprout_core.gateway.config import GatewayConfig
    from sprout_core.gateway.planner import POLICIES

    if (args.upstream is None) == (args.model is None):
        raise InputError("give exactly one of --upstream URL (an OpenAI-compatible engine) or --model embedded")
    if args.policy not in POLICIES:
        raise UnknownNameError(f"unknown policy {args.policy!r}: use one of {', '.join(POLICIES)}")
    if args.judge is not None and not (args.judge == "upstream" or args.judge.startswith("api:")):
        raise UnknownNameError(f"unknown judge {args.judge!r}: use api:MODEL (SPROUT_JUDGE_BASE_URL) or upstream")
    if args.judge is not None and not args.store_prompts and args.eval_prompts is None:
        raise InputError("the evaluator needs prompts: add --store-prompts (it samples recent requests) or "
                         "--eval-prompts FILE")
    from sprout_core import carbon

    try:
        carbon.embodied_preset(args.embodied)
    except ValueError as exc:
        raise UnknownNameError(str(exc)) from None
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: binding {args.host}: anyone who can reach it can use the upstream through it; put it "
              "behind a reverse proxy with authentication (docs/serving.md)", file=sys.stderr)
    ci_source = args.ci_source or ("fixed" if args.ci is not None else "trace")
    return GatewayConfig(
        upstream=args.upstream or "http://127.0.0.1:0/v1", model_name=args.model_name, policy=args.policy, ci=args.ci,
        zone=args.zone, year=args.year, ci_source=ci_source, ci_column=args.ci_column, xi=args.xi,
        confidence=args.confidence, profile=args.profile, solver=args.solver, pue=args.pue, embodied=args.embodied,
        api_key_env=args.server_api_key_env, judge=args.judge, eval_prompts=args.eval_prompts, n_eval=args.n_eval,
        store_prompts=args.store_prompts, store=not args.no_store, seed=args.seed, timeout_s=args.timeout,
        max_body_bytes=args.max_body_bytes, max_tokens=args.max_tokens, energy=args.energy,
        ecologits_provider=args.ecologits_provider, electricitymaps_url=args.electricitymaps_url,
        requests_per_hour=args.requests_per_hour)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    cfg = config_from_args(args)
    from sprout_core import profiles
    from sprout_core.gateway.intensity import TraceSource

    prof = profiles.load_profile(cfg.profile)    # unknown profile: refused before the server starts
    if cfg.policy == "sprout-task":              # the task classifier, trained once (minutes) before serving
        from sprout_core.commands.simulate import _classifier_progress
        from sprout_core.tasks import sim as task_sim

        task_sim.prepare(prof, task_sim.STRATEGY_NAME, progress=_classifier_progress())
    if cfg.ci_source != "fixed":
        TraceSource(cfg.zone, cfg.year, cfg.ci_column)  # unknown zone or year: refused now
    server = None
    if args.model == "embedded":
        from sprout_core.serving.llamacpp import LlamaServer

        server = LlamaServer().start()
        cfg = dataclasses.replace(cfg, upstream=server.base_url)
        print(f"llama.cpp server on the embedded model at {server.base_url} (PID {server.pid})", file=sys.stderr)
    import uvicorn

    from sprout_core.gateway.app import create_app

    app = create_app(cfg)
    print(f"Sprout gateway on http://{args.host}:{args.port}/v1 → {cfg.upstream} (policy {cfg.policy}, "
          f"CI {cfg.ci_source})", file=sys.stderr)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        if server is not None:
            server.stop()
    return 0
