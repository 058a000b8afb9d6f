"""Prometheus metrics, named fraudgraph_<area>_<what>_<unit>, labels never carry ids."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

PROJECTION_BATCHES = Counter("fraudgraph_projection_batches_total",
                             "Micro-batches written to Neo4j")
PROJECTION_TRANSACTIONS = Counter("fraudgraph_projection_transactions_total",
                                  "Transactions projected (new to the graph)")
PROJECTION_DUPLICATES = Counter("fraudgraph_projection_duplicates_total",
                                "Transactions skipped as already projected (replays)")
PROJECTION_REJECTED = Counter("fraudgraph_projection_rejected_total",
                              "Messages sent to the dead-letter topic", ["reason"])
PROJECTION_RELATIONSHIP_ROWS = Counter("fraudgraph_projection_relationship_upserts_total",
                                       "Aggregated relationship rows upserted")
PROJECTION_BATCH_SECONDS = Histogram(
    "fraudgraph_projection_batch_seconds", "Neo4j write time per batch",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
PROJECTION_LAG = Gauge("fraudgraph_projection_lag_messages",
                       "Messages on assigned partitions not yet consumed")
PROJECTION_PRUNED = Counter("fraudgraph_projection_pruned_transactions_total",
                            "Transaction detail nodes removed by retention")


def serve(port: int) -> None:
    """Expose /metrics on 127.0.0.1:port (0: do not serve)."""
    if port:
        start_http_server(port, addr="127.0.0.1")
