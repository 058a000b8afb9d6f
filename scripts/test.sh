#!/usr/bin/env bash
# The whole test suite on a fresh machine: install, start the local stack, run
# unit and integration tests against the real services.  If this script started
# the stack it stops it again at the end (data stays in the data folder).
# Extra arguments go to pytest (e.g. `scripts/test.sh tests/unit -x`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/bootstrap.sh

started_here=0
if ! fraudgraph stack status --check; then
  started_here=1
  fraudgraph stack up
fi
stop_stack() { [ "$started_here" = 1 ] && fraudgraph stack down || true; }
trap stop_stack EXIT

ruff check .
mypy
lint-imports
python -m pytest "$@"
