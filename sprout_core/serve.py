"""``python -m sprout_core.serve``: start the Sprout app with its safety defaults (``scripts/start.sh`` uses it).

    python -m sprout_core.serve                    # this machine only: http://127.0.0.1:8501
    python -m sprout_core.serve --port 8600
    python -m sprout_core.serve --shared           # serve a class on the local network (see the README)
    python -m sprout_core.serve --shared --public-host sprout.lab.example --port 8501

* The server listens on 127.0.0.1 unless ``--shared`` is given (then ``--host``, default 0.0.0.0).
* ``--shared`` sets ``SPROUT_SHARED=1`` (:mod:`sprout_core.access`): model and judge folders only from
  the operator's ``SPROUT_MODELS`` / ``SPROUT_MODEL_ROOT``, no process-wide settings for visitors.
* Nothing contacts the network: Streamlit's external-IP look-up and internal-IP probe are replaced by
  local answers before the server starts, and ``browser.serverAddress`` is set so the start-up banner
  needs no look-up either.
* Error details in the browser are a type and a message, never a stack (``.streamlit/config.toml``).

Any other argument is passed to ``streamlit run`` (e.g. ``--server.port 8600``). This module, like
:mod:`sprout_core.ui`, is Streamlit-aware because it starts the server.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from sprout_core import validate as V

APP = Path(__file__).resolve().parent.parent / "app.py"


def build_args(argv: list[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """``(streamlit arguments, environment updates)`` for the given launcher arguments."""
    p = argparse.ArgumentParser(prog="python -m sprout_core.serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--shared", action="store_true",
                   help="serve others on the network (class mode: operator's model list only, see the README)")
    p.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1; with --shared 0.0.0.0)")
    p.add_argument("--port", type=V.arg_whole(1, 65535), default=None, help="port (default 8501)")
    p.add_argument("--public-host", default=None,
                   help="with --shared: the name or address visitors type (default: this machine's host name)")
    args, rest = p.parse_known_args(argv)
    env: dict[str, str] = {}
    host = args.host or ("0.0.0.0" if args.shared else "127.0.0.1")
    st_args = ["run", str(APP), "--server.address", host, "--server.headless", "true",
               "--browser.gatherUsageStats", "false", "--client.showErrorDetails", "type"]
    if args.port:
        st_args += ["--server.port", str(args.port)]
    if args.shared:
        env["SPROUT_SHARED"] = "1"
        st_args += ["--browser.serverAddress", args.public_host or socket.gethostname()]
    return st_args + rest, env


def main(argv: list[str] | None = None) -> int:
    st_args, env = build_args(argv)
    os.environ.update(env)
    from streamlit.web import cli as stcli

    from sprout_core.ui import keep_streamlit_offline

    keep_streamlit_offline()
    sys.argv = ["streamlit", *st_args]
    return stcli.main()


if __name__ == "__main__":
    raise SystemExit(main())
