"""`fraudgraph bench-projection`: projection throughput on the local stack.

For each batch size: empty the graph, produce COUNT generated transactions to a
fresh topic, run the projector over it until idle, and report transactions
per second (wall time from first to last batch, Kafka consume + decode + Neo4j
write) and relationship upserts per second, and where the Neo4j writes' time
goes: wall microseconds per transaction of each part of a batch's transaction
(``graph.projection.PARTS``: the known-ids check, entities, each aggregate
relationship, the detail nodes, the cursors, the commit), and the CPU time the
local stack's Neo4j spent per transaction meanwhile (all its threads: what the
writes cost the machine).  The graph is left holding the last run.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fraudgraph import connect
from fraudgraph.bench import CpuBefore
from fraudgraph.settings import Settings
from fraudgraph.stream import projector
from graph.projection import PARTS, clear_graph
from ingest import kafka
from ingest.generator import Generator, GeneratorConfig
from ingest.publish import Publisher
from ingest.runs import KafkaSink, generate
from ingest.transaction import DecoderConfig


@dataclass(frozen=True)
class BenchRow:
    batch_size: int
    transactions: int
    seconds: float
    write_seconds: float
    relationship_rows: int
    part_seconds: dict[str, float]
    #: CPU seconds the stack's Neo4j used while projecting (None: not the local stack)
    neo4j_cpu_seconds: float | None = None

    @property
    def neo4j_cpu_us_per_tx(self) -> float | None:
        if self.neo4j_cpu_seconds is None:
            return None
        return round(self.neo4j_cpu_seconds * 1e6 / max(self.transactions, 1), 1)

    @property
    def tx_per_second(self) -> float:
        return self.transactions / self.seconds

    @property
    def upserts_per_second(self) -> float:
        return self.relationship_rows / self.seconds

    @property
    def part_us_per_tx(self) -> dict[str, float]:
        """Wall µs per projected transaction of each part of the writes, in their order."""
        return {part: round(self.part_seconds[part] * 1e6 / max(self.transactions, 1), 1)
                for part in PARTS if part in self.part_seconds}


def run(settings: Settings, count: int, batch_sizes: list[int], seed: int, labels_dir: Path,
        report: Callable[[str], None], leave_out: tuple[str, ...] = ()) -> list[BenchRow]:
    """One run per batch size; ``leave_out``: parts of the write not written
    (``graph.projection.OPTIONAL_PARTS``), to measure what they cost."""
    driver = connect.neo4j(settings)
    rows = []
    labels_dir.mkdir(parents=True, exist_ok=True)
    topics: list[str] = []  # every run's, deleted at the end
    try:
        for batch_size in batch_sizes:
            run_id = uuid.uuid4().hex[:8]
            topic, dlq = f"bench-projection-{run_id}", f"bench-projection-dlq-{run_id}"
            topics += [topic, dlq, f"{topic}-labels"]
            kafka.ensure_topics(settings.kafka.bootstrap, topics[-3:], settings.kafka.partitions)
            report(f"batch size {batch_size}: emptying the graph")
            clear_graph(driver)
            report(f"batch size {batch_size}: producing {count:,} transactions to {topic}")
            sink = KafkaSink(Publisher(settings.kafka.bootstrap), topic, f"{topic}-labels")
            generate(Generator(GeneratorConfig(seed=seed)), sink, labels_dir / "bench.jsonl",
                     count=count, duration=None, rate=0, progress=lambda _n: None)
            report(f"batch size {batch_size}: projecting")
            bench_settings = dataclasses.replace(
                settings, topics=dataclasses.replace(settings.topics, transactions=topic,
                                                     dlq=dlq))
            options = projector.ProjectorOptions(
                group=f"bench-{run_id}", batch_size=batch_size, until_idle=2.0,
                max_messages=count, prune_every=10**9, leave_out=leave_out)
            cpu = CpuBefore.take(settings)
            stats = projector.run(bench_settings, options, DecoderConfig())
            rows.append(BenchRow(batch_size, stats.projected, stats.busy_seconds,
                                 stats.write_seconds, stats.relationship_rows,
                                 stats.part_seconds, cpu.services_since().get("neo4j")))
            report(f"batch size {batch_size}: {rows[-1].tx_per_second:,.0f} tx/s")
    finally:
        driver.close()
        kafka.delete_topics(settings.kafka.bootstrap, topics)
        (labels_dir / "bench.jsonl").unlink(missing_ok=True)
    return rows
