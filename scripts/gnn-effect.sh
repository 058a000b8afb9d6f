#!/usr/bin/env bash
# The GNN's effect on the detector's decisions, measured after `make demo`:
# replay the demo's stream through the daemon twice over the same (final) graph,
# once with the GNN reasons off and once on (graph.gnn_enabled), each with its own blocklist schema
# and output topics, and evaluate both against the ground truth.  Both replays see
# the same graph, so the difference between the two reports is the GNN's alone.
#
#   bash scripts/gnn-effect.sh demo-20261122043000     # the demo run's name
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/bootstrap.sh

RUN=${1:?usage: scripts/gnn-effect.sh DEMO_RUN (the demo-YYYYmmddHHMMSS name it printed)}
TRUTH="/tmp/${RUN}-truth.jsonl"
[ -f "$TRUTH" ] || { echo "error: $TRUTH not found: run \`make demo\` first" >&2; exit 1; }
export FRAUDGRAPH_TOPIC_TRANSACTIONS="${RUN}-transactions" FRAUDGRAPH_TOPIC_LABELS="${RUN}-labels"

STAMP=$(date +%H%M%S)  # fresh groups, topics and schemas on every invocation
for variant in without with; do
  config=$(mktemp --suffix .toml)
  enabled=$([ "$variant" = with ] && echo true || echo false)
  { cat scripts/demo-detectors.toml; printf '\n[graph]\ngnn_enabled = %s\n' "$enabled"; } \
    > "$config"  # the demo's config (no [graph] table of its own), GNN reasons on or off
  for topic in DECISIONS ALERTS TRAINING DLQ; do
    export "FRAUDGRAPH_TOPIC_${topic}=${RUN}-${STAMP}-${variant}-gnn-${topic,,}"
  done
  export FRAUDGRAPH_POSTGRES_SCHEMA="${RUN//-/_}_${STAMP}_${variant}_gnn"
  echo "== daemon ${variant} GNN reasons (graph.gnn_enabled = ${enabled})"
  fraudgraph run --config "$config" --until-idle 10s --metrics-port 0 \
    --group "${RUN}-${STAMP}-${variant}-gnn" --checkpoint-every 0 --truth "$TRUTH"
  fraudgraph evaluate --truth "$TRUTH" --out "reports/${RUN}-${STAMP}-${variant}-gnn"
  rm -f "$config"
done
