"""`fraudgraph bench-detector`: decisions per second and end-to-end latency of the daemon.

On fresh topics: generate COUNT transactions, either all before the daemon
starts (``rate=0``: sustained throughput from a backlog) or at a fixed rate
while it runs (latency at an offered load), optionally with the projection
consumer running beside it as in production.  Latency is measured from the
Kafka timestamp of each transaction (when it was produced) to the moment its
decision was acknowledged by Kafka and the batch committed.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from detectors.config import DetectorConfig
from detectors.quality import percentile
from fraudgraph import daemon
from fraudgraph.settings import Settings
from ingest import kafka
from ingest.generator import Generator, GeneratorConfig
from ingest.publish import Publisher
from ingest.runs import KafkaSink, generate
from ingest.transaction import DecoderConfig


@dataclass(frozen=True)
class BenchResult:
    count: int
    offered_rate: float
    projection: bool
    decisions: int
    busy_seconds: float
    latencies_ms: list[float]
    stage_seconds: dict[str, float]

    @property
    def decisions_per_second(self) -> float:
        return self.decisions / self.busy_seconds if self.busy_seconds else 0.0

    def latency(self, q: float) -> float:
        """Percentile over the decisions after the warm-up (the first 2 s of offered load,
        or the first 1,000: connection set-up, JIT, caches)."""
        warmup = max(1000, round(2 * self.offered_rate))
        return percentile(self.latencies_ms[warmup:] or self.latencies_ms, q)


def run(settings: Settings, config: DetectorConfig, count: int, rate: float, seed: int,
        projection: bool, scratch: Path, report: Callable[[str], None],
        batch_timeout: float = daemon.DaemonOptions.batch_timeout) -> BenchResult:
    run_id = uuid.uuid4().hex[:8]
    names = {name: f"bench-detector-{run_id}-{name}" for name in
             ("transactions", "decisions", "alerts", "training", "labels", "dlq")}
    bench = dataclasses.replace(settings, topics=dataclasses.replace(settings.topics, **names))
    kafka.ensure_topics(bench.kafka.bootstrap, bench.topics.all(), bench.kafka.partitions)
    scratch.mkdir(parents=True, exist_ok=True)

    def produce() -> None:
        sink = KafkaSink(Publisher(bench.kafka.bootstrap, **{"linger.ms": 1}),
                         names["transactions"], names["labels"])
        generate(Generator(GeneratorConfig(seed=seed)), sink, scratch / f"{run_id}.jsonl",
                 count=count, duration=None, rate=rate, progress=lambda _n: None)

    ready = threading.Event()

    def produce_when_ready() -> None:
        ready.wait(120)  # the daemon has joined its group: latency excludes the join
        produce()

    producer = threading.Thread(target=produce_when_ready, name="bench-producer")
    if rate <= 0:
        report(f"producing {count:,} transactions to {names['transactions']}")
        produce()
    projector = None
    if projection:
        env = {**os.environ, **{f"FRAUDGRAPH_TOPIC_{k.upper()}": v for k, v in names.items()}}
        projector = subprocess.Popen(
            [sys.executable, "-m", "fraudgraph", "project", "--until-idle", "5s",
             "--metrics-port", "0", "--group", f"bench-projection-{run_id}"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if rate > 0:
        report(f"offering {count:,} transactions at {rate:,.0f}/s")
        producer.start()
    report("deciding")
    options = daemon.DaemonOptions(group=f"bench-detector-{run_id}", until_idle=5.0,
                                   max_messages=count, batch_timeout=batch_timeout)
    try:
        stats = daemon.run(bench, config, options, DecoderConfig(), stop=threading.Event(),
                           ready=ready)
    finally:
        if producer.is_alive():
            producer.join()
        if projector is not None:
            projector.wait(timeout=600)
        kafka.delete_topics(bench.kafka.bootstrap, names.values())
    return BenchResult(count, rate, projection, sum(stats.outcomes.values()),
                       stats.busy_seconds, stats.latencies_ms, stats.stage_seconds)
