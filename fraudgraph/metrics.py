"""Prometheus metrics, named fraudgraph_<area>_<what>_<unit>, labels never carry ids."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

PROJECTION_BATCHES = Counter("fraudgraph_projection_batches_total",
                             "Micro-batches written to Neo4j")
PROJECTION_TRANSACTIONS = Counter("fraudgraph_projection_transactions_total",
                                  "Transactions projected (new to the graph)")
PROJECTION_DUPLICATES = Counter("fraudgraph_projection_duplicates_total",
                                "Transactions skipped as already projected (replays)")
PROJECTION_REJECTED = Counter("fraudgraph_projection_rejected_total",
                              "Messages rejected and skipped (the daemon writes their "
                              "dead-letter records)", ["reason"])
PROJECTION_RELATIONSHIP_ROWS = Counter("fraudgraph_projection_relationship_upserts_total",
                                       "Aggregated relationship rows upserted")
PROJECTION_BATCH_SECONDS = Histogram(
    "fraudgraph_projection_batch_seconds", "Neo4j write time per batch",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
PROJECTION_PART_SECONDS = Counter(
    "fraudgraph_projection_part_seconds_total",
    "Wall seconds of each part of the projection's Neo4j writes (graph.projection.PARTS)",
    ["part"])
PROJECTION_LAG = Gauge("fraudgraph_projection_lag_messages",
                       "Messages on assigned partitions not yet consumed")
PROJECTION_PRUNED = Counter("fraudgraph_projection_pruned_transactions_total",
                            "Transaction detail nodes removed by retention")


def serve(port: int) -> None:
    """Expose /metrics on 127.0.0.1:port (0: do not serve)."""
    if port:
        start_http_server(port, addr="127.0.0.1")


def serve_with_health(port: int, health: Callable[[], tuple[bool, dict[str, Any]]]
                      ) -> ThreadingHTTPServer | None:
    """Serve /metrics and /healthz (200 or 503 with a JSON body) on 127.0.0.1:port."""
    if not port:
        return None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/healthz"):
                ok, detail = health()
                body, status, kind = json.dumps(detail).encode(), 200 if ok else 503, \
                    "application/json"
            elif self.path.startswith("/metrics"):
                body, status, kind = generate_latest(), 200, CONTENT_TYPE_LATEST
            else:
                body, status, kind = b"try /metrics or /healthz\n", 404, "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
DETECTOR_DECISIONS = Counter("fraudgraph_detector_decisions_total",
                             "Decisions published, by outcome", ["decision"])
DETECTOR_REASONS = Counter("fraudgraph_detector_reasons_total",
                           "Reasons on review/block decisions, by code", ["code"])
DETECTOR_REJECTED = Counter("fraudgraph_detector_rejected_total",
                            "Messages sent to the dead-letter topic, by reason", ["reason"])
DLQ_DROPPED = Gauge("fraudgraph_detector_dlq_dropped",
                    "Dead-letter records Kafka refused for good and that were dropped (logged), "
                    "since the daemon started")
DETECTOR_BATCH_SIZE = Histogram("fraudgraph_detector_batch_size_messages",
                                "Messages per micro-batch",
                                buckets=(1, 10, 50, 100, 500, 1000, 2500, 5000, 10000))
DETECTOR_NEO4J_SECONDS = Counter(
    "fraudgraph_detector_neo4j_seconds_total",
    "Wall seconds of the daemon's Neo4j calls by function (graph.detect: batch_features, "
    "projection_progress, ring_links, set_decisions, label_fraud, ...)", ["call"])
DETECTOR_STAGE_SECONDS = Histogram("fraudgraph_detector_stage_seconds",
                                   "Time per micro-batch in each stage", ["stage"],
                                   buckets=LATENCY_BUCKETS)
DETECTOR_LATENCY = Histogram("fraudgraph_detector_end_to_end_seconds",
                             "Transaction produced → its decision published",
                             buckets=LATENCY_BUCKETS)
DETECTOR_LAG = Gauge("fraudgraph_detector_lag_messages",
                     "Messages on assigned partitions not yet consumed")
DETECTOR_FLAGGED = Counter("fraudgraph_detector_flagged_entities_total",
                           "Entities the daemon added to the blocklist, by type and source",
                           ["entity_type", "source"])
DETECTOR_BLOCKLIST = Gauge("fraudgraph_detector_blocklist_active_entries",
                           "Active entries in the daemon's blocklist view")
DETECTOR_LABELS = Counter("fraudgraph_detector_labels_total", "Labels applied, by label",
                          ["label"])
DETECTOR_RULE_STATE = Gauge("fraudgraph_detector_rule_state_keys",
                            "Keys held in the bounded rule state, by table", ["table"])
DETECTOR_CHECKPOINT_PAUSE = Histogram(
    "fraudgraph_detector_checkpoint_pause_seconds",
    "How long the loop stopped to start a rule-state checkpoint (the write runs in a "
    "forked child)", buckets=LATENCY_BUCKETS)
DETECTOR_CHECKPOINT_WRITE = Histogram(
    "fraudgraph_detector_checkpoint_write_seconds",
    "Rule-state checkpoint: fork to file durable (in the background)",
    buckets=LATENCY_BUCKETS)
DETECTOR_CHECKPOINT_FAILED = Counter("fraudgraph_detector_checkpoint_failed_total",
                                     "Rule-state checkpoints whose writer failed")
DETECTOR_RINGS = Gauge("fraudgraph_detector_rings", "Fraud rings found by the last sweep")
DETECTOR_GRAPH_BEHIND = Gauge("fraudgraph_detector_graph_behind",
                              "1 while batches are decided before the graph (projection, "
                              "labels) holds their time")
DETECTOR_GRAPH_WAIT = Counter("fraudgraph_detector_graph_wait_seconds_total",
                              "Time batches waited for the graph to hold their time")
DETECTOR_GRAPH_WAIT_ON = Counter("fraudgraph_detector_graph_wait_on_seconds_total",
                                 "Of that, time waiting for the projection or for the label "
                                 "worker", ["on"])
DETECTOR_DEGRADED = Gauge("fraudgraph_detector_degraded",
                          "1 while a dependency is failing, by service", ["service"])
MODEL_INFO = Gauge("fraudgraph_model_info", "1 for the learned model the daemon scores with",
                   ["version"])
MODEL_SCORE = Histogram("fraudgraph_model_score", "The learned model's fraud probabilities",
                        buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 0.8, 0.95))
MODEL_FEATURE_PSI = Gauge("fraudgraph_model_feature_psi",
                          "Population stability index of each feature over the last rows "
                          "scored against the model's training window (> 0.25: drifted)",
                          ["feature"])
