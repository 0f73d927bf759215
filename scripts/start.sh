#!/usr/bin/env bash
# Install everything and start the Sprout app on the embedded default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${SPROUT_VENV:-.venv}/bin/python" -m streamlit run app.py "$@"
