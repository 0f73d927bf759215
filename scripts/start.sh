#!/usr/bin/env bash
# Install everything and start the Sprout app on the embedded default model.
#   bash scripts/start.sh                 # this machine only: http://127.0.0.1:8501
#   bash scripts/start.sh --port 8600
#   bash scripts/start.sh --shared        # serve a class on the local network (README: "Serving a class")
# Extra arguments go to `python -m sprout_core.serve` (and from there to `streamlit run`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${SPROUT_VENV:-.venv}/bin/python" -m sprout_core.serve "$@"
