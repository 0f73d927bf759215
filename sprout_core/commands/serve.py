"""``python -m sprout_core serve``: a llama.cpp server (OpenAI-compatible) for the embedded model on this machine."""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from sprout_core.serving.llamacpp import EMBEDDED_ALIAS, EMBEDDED_CTX, LlamaServer


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="start a llama.cpp server for the embedded model (OpenAI-compatible API)",
                       description="Start llama.cpp's OpenAI-compatible server on 127.0.0.1 for the embedded "
                                   "SmolLM2-135M-Instruct GGUF, print how to point Sprout at it, and run until Ctrl-C. "
                                   "Needs llama-cpp-python[server] (scripts/setup.sh --llama-cpp).")
    p.add_argument("--port", type=int, default=None, help="TCP port (default: a free one)")
    p.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: as for torch, 1 on ≤ 2 cores)")
    p.add_argument("--ctx", type=int, default=EMBEDDED_CTX, help=f"context length in tokens (default {EMBEDDED_CTX})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.port is not None and not 1 <= args.port <= 65535:
        print("error: --port must be between 1 and 65535", file=sys.stderr)
        return 2
    server = LlamaServer(port=args.port, threads=args.threads, n_ctx=args.ctx).start()
    print(f"llama.cpp server for the embedded model: {server.base_url} (model {EMBEDDED_ALIAS!r}, PID {server.pid}, "
          f"log {server.log_path})")
    print(f"Use it:  SPROUT_SERVER_URL={server.base_url} SPROUT_SERVER_CONTEXT={args.ctx} bash scripts/start.sh")
    print(f"   or:   python -m sprout_core generate --server-url {server.base_url} --prompt 'Why is the sky blue?'")
    print("Ctrl-C stops it.", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            if server.process is not None and server.process.poll() is not None:
                print(f"error: the server exited (code {server.process.returncode}): {server.log_tail()}", file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    print("server stopped")
    return 0
