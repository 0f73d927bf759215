#!/usr/bin/env bash
# Install everything (with test packages and chromium) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
exec "${SPROUT_VENV:-.venv}/bin/python" -m pytest -q -p no:cacheprovider tests "$@"
