"""Command-line entry point: ``python -m sprout_core <command> ...``.

Each command lives in its own module under :mod:`sprout_core.commands` exposing
``register(subparsers)``, which adds a subparser whose ``func(args) -> int`` runs it.
Modules are imported lazily so a command never pays for another's imports.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from sprout_core.errors import SproutError, describe

#: command-module names under sprout_core.commands, in help order
COMMAND_MODULES = ["generate", "optimize", "simulate", "evaluate", "agreement", "classify", "serve", "grid"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sprout_core", description="Sprout: carbon-friendly LLM inference with generation directives.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"sprout_core.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"sprout_core.commands.{name}":
                continue  # command not built yet
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SproutError as exc:  # the one error root: a message a user can act on, no traceback
        print(f"error: {describe(exc)}", file=sys.stderr)
        return 2
