#!/usr/bin/env bash
# The decisions of one generated history, as digests: run it before and after a
# change that must not change behaviour, and compare the lines.
#   scripts/decisions-digest.sh [SEED] [COUNT]      (default 42 30000)
# Each variant (the default rules, the legacy rules) is decided by
# `fraudgraph backtest` (as-of graph reads: the result never depends on timing);
# its decisions.jsonl (id order, no wall-clock fields) is hashed.  Empties the graph.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/bootstrap.sh
SEED="${1:-42}"
COUNT="${2:-30000}"
OUT="$(mktemp -d)"
fraudgraph backtest --seeds "$SEED" --count "$COUNT" --variant rules --variant legacy \
  --out "$OUT" --yes >&2
for f in "$OUT"/*/*/decisions.jsonl; do
  printf '%s  %s  %s lines\n' "$(sha256sum < "$f" | cut -c1-16)" \
    "${f#"$OUT"/}" "$(wc -l < "$f")"
done
rm -rf "$OUT"
