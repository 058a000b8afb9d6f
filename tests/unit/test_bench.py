"""The bench's figures and its soak picture, without a stack."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraudgraph.bench import BenchResult, plot_samples


def test_soak_samples_go_to_the_json_and_a_png(tmp_path: Path) -> None:
    result = BenchResult(count=3000, offered_rate=100.0, projection=False, decisions=3000,
                         busy_seconds=30.0, latencies_ms=[5.0] * 200 + [float(i) for i in
                                                                      range(1, 2801)])
    state = {"cards": 900.0, "users": 400.0, "devices": 700.0, "ips": 500.0}
    result.samples = [(10.0, 150.0, 40.0, state), (20.0, 151.5, 12.0, {**state, "cards": 950.0}),
                      (30.0, 151.0, 0.0, state)]
    figures = result.as_json()
    assert figures["decisions_per_second"] == 100.0
    # the first 1,000 decisions are the warm-up: percentiles over 801..2800
    assert figures["latency_ms"]["p50"] == 1800.0  # nearest rank 1,000 of 2,000
    assert figures["samples"][1] == {"seconds": 20.0, "rss_mb": 151.5, "lag": 12.0,
                                     "rule_state": {**state, "cards": 950.0}}
    png = plot_samples(figures["samples"], tmp_path / "soak.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_latency_samples_stay_bounded_and_cover_the_whole_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from fraudgraph import daemon

    monkeypatch.setattr(daemon, "LATENCY_SAMPLES", 100)
    stats = daemon.DaemonStats()
    for i in range(1000):
        daemon._sample_latency(stats, float(i))
    assert stats.latency_stride == 16 and len(stats.latencies_ms) <= 100
    # an even sample in stream order, from the first decision to the last stride
    assert list(stats.latencies_ms) == [float(i) for i in range(0, 1000, 16)]
