#!/usr/bin/env bash
# The GNN's effect on the detector's decisions, measured after `make demo` as a
# partial backtest: the champion scores the graph seeing only the fraud confirmed
# before its training cut-off (`gnn score --labels-until cut --no-flag`, after the
# blocked marks of earlier GNN flags are taken off), then the demo's stream is
# replayed through the daemon twice, once with the GNN reasons off and once on
# (graph.gnn_enabled), each with its own blocklist schema and output topics, and
# both are evaluated against the ground truth on the transactions from the
# cut-off plus the label delay (3 days) on, when every label the model saw had
# been reported.  Partial: both replays read the final graph (the activity and
# the confirmed-fraud marks of the whole run), so neither is a clean backtest;
# the difference between the two reports is the GNN's alone.  On exit the
# champion scores the graph again with every label, as `make demo` left it.
#
#   bash scripts/gnn-effect.sh demo-20261122043000     # the demo run's name
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/bootstrap.sh

RUN=${1:?usage: scripts/gnn-effect.sh DEMO_RUN (the demo-YYYYmmddHHMMSS name it printed)}
TRUTH="/tmp/${RUN}-truth.jsonl"
[ -f "$TRUTH" ] || { echo "error: $TRUTH not found: run \`make demo\` first" >&2; exit 1; }
export FRAUDGRAPH_TOPIC_TRANSACTIONS="${RUN}-transactions" FRAUDGRAPH_TOPIC_LABELS="${RUN}-labels"

demo_env() {  # the demo's schema (its model registry and blocklist) and alerts topic
  export FRAUDGRAPH_POSTGRES_SCHEMA="${RUN//-/_}" FRAUDGRAPH_TOPIC_ALERTS="${RUN}-alerts"
}
restore() { demo_env; fraudgraph gnn score; }
demo_env
CUT_MS=$(python -c '
from fraudgraph import connect
from fraudgraph.settings import load_settings
from gnn import registry
store = connect.blocklist(load_settings())
champion = registry.champion(store.conn)
print(champion.cut_ms if champion else "")')
[ -n "$CUT_MS" ] || { echo "error: no champion model: run \`make demo\` first" >&2; exit 1; }
SINCE=$(date -u -d "@$(( (CUT_MS + 3 * 86400000) / 1000 ))" +%Y-%m-%dT%H:%M:%SZ)
echo "== backtest: scores from the fraud confirmed before the cut-off, evaluated from ${SINCE}"
# no flags, and no blocked marks from earlier GNN flags: the replay without GNN
# reasons would see them through the graph
python -c '
from fraudgraph import connect
from fraudgraph.settings import load_settings
from graph import detect
driver = connect.neo4j(load_settings())
records, _, _ = driver.execute_query(
    "MATCH (n:Blocked {blocked_source: $source}) "
    "RETURN toLower([l IN labels(n) WHERE l IN $types][0]) AS type, n.id AS id",
    source="gnn", types=["Card", "User", "Device", "IP", "Site"])
detect.unmark_blocked(driver, [(r["type"], r["id"]) for r in records])
driver.close()'
trap restore EXIT
fraudgraph gnn score --labels-until cut --no-flag

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
  fraudgraph evaluate --truth "$TRUTH" --since "$SINCE" \
    --out "reports/${RUN}-${STAMP}-${variant}-gnn"
  rm -f "$config"
done
