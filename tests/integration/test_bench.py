"""`fraudgraph bench` end to end on a small count: it completes and its JSON holds the
figures (the numbers themselves are measured, not asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from fraudgraph.settings import Settings
from tests.integration.cli_helpers import run_cli


def test_bench_runs_daemon_projection_and_naive_baseline(stack: Settings,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = run_cli("bench", "--count", "3000", "--baseline-count", "300", "--json", str(out))
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    assert figures["decisions"] == 3000 and figures["transactions"] == 3000
    assert figures["decisions_per_second"] > 0
    assert figures["naive_baseline"]["messages"] == 300
    assert figures["ratio_to_naive"] > 0
    assert figures["projection_per_second"] > 0 and figures["projection_lag_at_end"] >= 0
    assert set(figures["cpu_seconds"]) >= {"detector daemon", "projector", "kafka", "neo4j",
                                           "postgres"}
    assert set(figures["latency_ms"]) == {"p50", "p95", "p99"}
    assert "ratio to naive" in result.stdout
