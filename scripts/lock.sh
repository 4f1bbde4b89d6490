#!/usr/bin/env bash
# Refreshes requirements.lock (`make lock`): resolves pyproject.toml's ranges (runtime and the
# dev extra, test servers included) plus the installers to exact versions with pip-tools, run
# from a throwaway venv so the project's own venv is not touched.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools"
"$tools/bin/pip" install --quiet "pip-tools>=7.4,<8"
"$tools/bin/pip-compile" --quiet --upgrade --extra dev --allow-unsafe --strip-extras \
  --no-emit-index-url --no-emit-find-links --output-file requirements.lock \
  pyproject.toml scripts/build-tools.in
echo "requirements.lock: $(grep -c '==' requirements.lock) pinned packages"
