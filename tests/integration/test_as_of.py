"""As-of graph reads: the daemon decides a labelled stream the same way, transaction by
transaction, whether the projection runs alongside it (and the daemon has to wait for
the graph to hold each batch's time) or has finished the whole stream first (and the
graph holds the future of every transaction).

One partition, so the streaming rules see one order in both runs; each run has its
own graph (cleared), consumer groups, output topics and blocklist schema, and the
same input and labels topics."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from detectors import config as detector_config
from fraudgraph import connect
from fraudgraph.settings import Settings
from fraudgraph.stream import daemon, projector
from graph.projection import clear_graph
from ingest.generator import Generator, GeneratorConfig
from ingest.publish import Publisher
from ingest.runs import KafkaSink, generate
from ingest.transaction import DecoderConfig
from tests.integration.test_daemon import decisions, scratch

COUNT = 12_000
CONFIG = GeneratorConfig(seed=77, users=1500, sites=200, fraud_rate=0.04,
                         label_delay_ms=86_400_000)
#: reasons that read the graph: at least these must fire, or the comparison proves little
GRAPH_CODES = {"shared_device", "shared_card", "near_fraud", "compromised_site", "fraud_ring"}


def run_settings(settings: Settings, run: str) -> Settings:
    """The run's own outputs and blocklist; the input and labels topics are shared."""
    topics = {name: f"{getattr(settings.topics, name)}-{run}"
              for name in ("decisions", "alerts", "training", "dlq")}
    return dataclasses.replace(
        settings, topics=dataclasses.replace(settings.topics, **topics),
        postgres=dataclasses.replace(settings.postgres,
                                     schema=f"{settings.postgres.schema}_{run}"))


def decide(settings: Settings, group: str) -> daemon.DaemonStats:
    options = daemon.DaemonOptions(group=group, batch_size=2000, until_idle=4.0,
                                   graph_wait=None)
    config = detector_config.load("default")  # with the labels' blocklist policy on
    config = dataclasses.replace(config, labels=dataclasses.replace(config.labels,
                                                                    blocklist_card=True))
    return daemon.run(settings, config, options, DecoderConfig(),
                      stop=threading.Event())


def project(settings: Settings, group: str, stop: threading.Event | None = None) -> Any:
    """Until idle; or, alongside the daemon (``stop``), in small batches, so the daemon
    runs ahead of the graph and has to wait for it."""
    options = projector.ProjectorOptions(group=group, batch_size=300 if stop else 5000,
                                         until_idle=None if stop else 3.0)
    return projector.run(settings, options, DecoderConfig(), stop=stop or threading.Event())


def outcome(settings: Settings) -> dict[str, tuple[str, float, list[tuple[str, str]]]]:
    return {key: (d.decision, d.score, [(r.code, r.detail) for r in d.reasons])
            for key, d in decisions(settings).items()}


def test_decisions_are_the_same_with_the_projection_alongside_or_finished_first(
        stack: Settings, unique: str, tmp_path: Path) -> None:
    settings = scratch(stack, unique, partitions=1)
    driver = connect.neo4j(settings)
    try:
        sink = KafkaSink(Publisher(settings.kafka.bootstrap), settings.topics.transactions,
                         settings.topics.labels)
        generate(Generator(CONFIG), sink, tmp_path / "truth.jsonl", count=COUNT,
                 duration=None, rate=0, progress=lambda _n: None)

        # (a) the projection alongside: the daemon runs ahead and waits for the graph
        clear_graph(driver)
        alongside = run_settings(settings, "a")
        stop = threading.Event()
        projecting = threading.Thread(target=project, args=(alongside, f"proj-a-{unique}",
                                                            stop))
        projecting.start()
        try:
            stats_a = decide(alongside, f"daemon-a-{unique}")
        finally:
            stop.set()
            projecting.join(timeout=60)

        # (b) the projection finished first: the graph holds every transaction's future
        clear_graph(driver)
        finished = run_settings(settings, "b")
        assert project(finished, f"proj-b-{unique}").projected == COUNT
        stats_b = decide(finished, f"daemon-b-{unique}")
    finally:
        driver.close()

    a, b = outcome(alongside), outcome(finished)
    assert len(a) == len(b) == COUNT
    differing = [key for key in a if a[key] != b[key]]
    assert not differing, [(key, a[key], b[key]) for key in differing[:5]]
    assert stats_a.labels == stats_b.labels > 0
    assert stats_a.graph_behind == stats_b.graph_behind == 0
    assert stats_a.graph_wait_seconds > 0  # (a) really had to wait for the projection
    assert stats_a.graph_wait_on["projection"] > 0
    assert sum(stats_a.graph_wait_on.values()) <= stats_a.graph_wait_seconds + 1e-6
    fired = Counter(code for _, _, reasons in a.values() for code, _ in reasons)
    assert set(fired) >= GRAPH_CODES, fired  # the graph really took part
    assert fired["blocklist_card"] > 0  # and so did the labels (cards blocklisted by them)
