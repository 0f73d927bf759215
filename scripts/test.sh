#!/usr/bin/env bash
# Install everything (with test packages and chromium) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
# the serving tests must run against the real llama.cpp server here, not skip
export SPROUT_REQUIRE_LLAMA_CPP=1
# lint first (pyproject.toml [tool.ruff]): zero findings, or the run stops here
"${SPROUT_VENV:-.venv}/bin/python" -m ruff check .
exec "${SPROUT_VENV:-.venv}/bin/python" -m pytest -q -p no:cacheprovider tests "$@"
