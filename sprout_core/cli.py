"""Command-line entry point: ``python -m sprout_core <command> ...``.

Each command lives in its own module under :mod:`sprout_core.commands` exposing
``register(subparsers)``, which adds a subparser whose ``func(args) -> int`` runs it.
Modules are imported lazily so a command never pays for another's imports.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
import traceback

from sprout_core.errors import SproutError, describe, internal_error_message
from sprout_core.settings import Settings

_log = logging.getLogger("sprout.cli")

#: command-module names under sprout_core.commands, in help order
COMMAND_MODULES = ["generate", "optimize", "simulate", "evaluate", "quality", "agreement", "classify", "serve", "grid",
                   "gateway"]


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
    """Run one command. Exit status: 0 ok, 1 done with failures (or a bug), 2 bad input or unusable data,
    130 interrupted (Ctrl-C), 143 terminated (SIGTERM; the answer in flight is kept like on Ctrl-C). Never a Python traceback unless ``SPROUT_DEBUG=1``."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a bad flag (argparse printed the usage and the message)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    previous = _catch_sigterm()
    if Settings.from_env().debug and not logging.getLogger("sprout").handlers[1:]:
        h = logging.StreamHandler(sys.stderr)   # SPROUT_DEBUG=1: the sprout logger's reasons on stderr
        h.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logging.getLogger("sprout").addHandler(h)
        logging.getLogger("sprout").setLevel(logging.DEBUG)
    try:
        return int(args.func(args) or 0)
    except Terminated:
        print("terminated (SIGTERM): answers stored so far are kept, the one in progress is stored as aborted; "
              "run the same command again to resume", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted: answers stored so far are kept; run the same command again to resume", file=sys.stderr)
        return 130
    except SproutError as exc:  # the one error root: a message a user can act on, no traceback
        print(f"error: {describe(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 1
    except Exception as exc:  # noqa: BLE001 - the boundary: a bug is reported as type and message, not a stack
        _log.debug("the boundary: a bug is reported as type and message, not a stack: %s", exc, exc_info=True)
        if Settings.from_env().debug:
            traceback.print_exc()
        print(f"error: {internal_error_message(exc)} (set SPROUT_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C, so the answer in flight is kept (stored as aborted with
    the energy so far) exactly as on SIGINT. Exit status 143 (128 + 15)."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def _catch_sigterm():
    """Make SIGTERM raise :class:`Terminated` (main thread only); returns the previous handler, or None."""
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        return signal.signal(signal.SIGTERM, _raise_terminated)
    except (ValueError, OSError):  # not allowed here (e.g. an embedded interpreter): SIGTERM keeps its default
        return None
