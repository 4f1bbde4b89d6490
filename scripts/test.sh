#!/usr/bin/env bash
# The whole suite once per MongoDB test server: nx-27017 (the embedded default), then
# SecantusDB (WiredTiger). Both always run; the exit code is non-zero if either failed.
# With MONGODB_URI set, the suite runs once, against that server. Arguments go to pytest.
# Each run uses CHATADMIN_TEST_WORKERS pytest-xdist workers (default 2, one per core here);
# every worker starts its own database server and redis-server. Tests marked `one_server` run in
# the first pass only (tests/conftest.py says why).
set -uo pipefail
cd "$(dirname "$0")/.."
workers=(-n "${CHATADMIN_TEST_WORKERS:-2}")
if [ -n "${MONGODB_URI:-}" ]; then
  echo "=== the suite on MONGODB_URI"
  exec .venv/bin/pytest "${workers[@]}" "$@"
fi
rc=0
summary=()
for server in nx-27017 secantusdb; do
  echo "=== the suite on $server"
  start=$(date +%s)
  CHATADMIN_TEST_SERVER=$server .venv/bin/pytest "${workers[@]}" "$@"
  status=$?
  [ $status -eq 0 ] || rc=1
  summary+=("$server: $([ $status -eq 0 ] && echo passed || echo "FAILED (exit $status)") in $(( $(date +%s) - start )) s")
done
printf '=== %s\n' "${summary[@]}"
exit $rc
