#!/usr/bin/env bash
# The end-to-end demo on a fresh machine: install, start the local stack, check
# a round trip through Kafka, Neo4j and PostgreSQL, stream 50,000 generated
# card transactions with labelled fraud into Kafka and project them into the
# Neo4j graph.  The stack keeps running afterwards: `fraudgraph stack status`,
# `fraudgraph stack down`.  Running it again is harmless: the same seed gives
# the same transactions, and the projection skips what it already has.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/bootstrap.sh

fraudgraph stack up
fraudgraph smoke
fraudgraph generate --count "${DEMO_COUNT:-50000}" --seed 42
fraudgraph project --until-idle 5s --metrics-port 0
fraudgraph graph stats
echo
echo "Neo4j Browser: http://127.0.0.1:${FRAUDGRAPH_NEO4J_HTTP_PORT:-7474}/browser/ (user neo4j; password in the data folder's secrets.env)"
echo "Try: MATCH (d:Device)<-[u:USED_ON]-(c:Card) WITH d, count(c) AS cards WHERE cards > 3 RETURN d.id, cards ORDER BY cards DESC LIMIT 10"
