#!/usr/bin/env bash
# Run the ingestion benchmark in its own virtualenv (bench/.venv): the product installed
# editable with its dev extras, plus bench/requirements.txt (langchain-mongodb, httpx), which
# stay out of the product's dependencies. Arguments go to bench/ingest.py, e.g.
#   bash bench/run.sh --messages 50000 --clients 4
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH/.." && pwd)"
VENV="$BENCH/.venv"
PY="$VENV/bin/python"

# Reinstall only when pyproject.toml or requirements.txt change.
STAMP="$VENV/.installed-$(cat "$ROOT/pyproject.toml" "$BENCH/requirements.txt" | cksum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ]; then
    [ -x "$PY" ] || python3 -m venv "$VENV"
    "$PY" -m pip install --quiet --upgrade pip
    "$PY" -m pip install --quiet -e "$ROOT[dev]" -r "$BENCH/requirements.txt"
    rm -f "$VENV"/.installed-*
    touch "$STAMP"
fi

cd "$ROOT"
exec "$PY" "$BENCH/ingest.py" "$@"
