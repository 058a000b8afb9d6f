#!/usr/bin/env bash
# The end-to-end demo on a fresh machine: install, start the local stack and
# run a round trip through Kafka, Neo4j and PostgreSQL.  The stack keeps
# running afterwards: `fraudgraph stack status`, `fraudgraph stack down`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/bootstrap.sh

fraudgraph stack up
fraudgraph smoke
echo
echo "Neo4j Browser: http://127.0.0.1:${FRAUDGRAPH_NEO4J_HTTP_PORT:-7474}/browser/ (user neo4j; password in the data folder's secrets.env)"
