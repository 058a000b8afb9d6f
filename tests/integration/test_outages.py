"""Outages mid-stream: Neo4j stopped for 30 s, then PostgreSQL, then Kafka restarted.

The daemon (in this process, so its log lines and /healthz can be read) reports each
outage on /healthz and in the ``fraudgraph_detector_degraded`` gauge while it lasts,
logs it once per interval, backs off, resumes by itself, and ends with exactly the
decisions of a daemon that ran through the same stream without outages.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator

import msgspec
import pytest

from detectors import config as detector_config
from fraudgraph import connect
from fraudgraph.settings import Settings
from fraudgraph.stack import manager
from fraudgraph.stack.services import Service
from fraudgraph.stream import daemon
from fraudgraph.stream.health import LOG_EVERY
from ingest.transaction import DecoderConfig, Transaction, encode
from tests.integration.test_daemon import (
    _health,
    decisions,
    free_port,
    produce,
    scratch,
    tx,
    wait_for_decision,
)

NEO4J_DOWN = 30.0  # seconds


def service(stack: Settings, name: str) -> Service:
    return next(s for s in manager.services(stack, None, lambda _m: None) if s.name == name)


@pytest.fixture
def restore_stack(stack: Settings) -> Iterator[None]:
    yield
    manager.up(stack, lambda _m: None)  # whatever a failed test left stopped


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    seen = getattr(condition, "seen", [])[-3:]
    raise AssertionError(f"not within {timeout:.0f}s: {what}" + (f" (saw {seen})" if seen else ""))


def reports(port: int, name: str) -> Callable[[], bool]:
    def check() -> bool:
        seen.append(_health(port))
        return bool(seen[-1]["degraded"] == [name])
    seen: list[dict[str, object]] = []
    check.seen = seen  # type: ignore[attr-defined]
    return check


def degraded_gauge(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    line = f'fraudgraph_detector_degraded{{service="{name}"}} '
    values = [float(row[len(line):]) for row in text.splitlines() if row.startswith(line)]
    return values[0] if values else 0.0


def phase(unique: str, start: int) -> list[Transaction]:
    """Ordinary purchases of a few cards, and a card-testing run (flagged, so its rows
    must reach PostgreSQL) on a card of its own."""
    base = [tx(unique, start + i, start + i, card=f"c{i % 7}") for i in range(40)]
    probes = [msgspec.structs.replace(tx(unique, start + 100 + i, start + 50 + i * 0.5,
                                         card=f"probe{start}", amount_minor=150),
                                      site_id=f"{unique}-shop{start}-{i}") for i in range(4)]
    return base + probes


def outcome(settings: Settings) -> dict[str, tuple[str, list[str]]]:
    return {key: (d.decision, [r.code for r in d.reasons])
            for key, d in decisions(settings).items()}  # asserts one decision per key


def test_neo4j_postgres_and_kafka_outages_are_ridden_out(
        stack: Settings, unique: str, restore_stack: None,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="fraudgraph")
    settings = scratch(stack, unique, partitions=1)  # one order: comparable with a clean run
    stop, port = threading.Event(), free_port()
    config = detector_config.load("default")
    running = threading.Thread(target=daemon.run, args=(
        # no projector runs here: the graph checks read what the graph holds after 1 s
        settings, config, daemon.DaemonOptions(group=f"test-daemon-{unique}", metrics_port=port,
                                               graph_wait=1.0),
        DecoderConfig()), kwargs={"stop": stop})
    running.start()
    phases = [phase(unique, 1000 * n) for n in range(4)]
    try:
        produce(settings, [encode(t) for t in phases[0]])
        wait_for_decision(settings, phases[0][-1].transaction_id)
        assert _health(port)["status"] == "ok"

        for name, outage in (("neo4j", phases[1]), ("postgres", phases[2])):
            down_at = time.monotonic()
            service(stack, name).stop()
            produce(settings, [encode(t) for t in outage])
            wait_until(reports(port, name), 30, f"/healthz reports {name}")
            assert _health(port)["status"] == "degraded"
            assert degraded_gauge(port, name) == 1.0
            if name == "neo4j":  # held down 30 s: the outage is logged once per interval
                time.sleep(max(0.0, NEO4J_DOWN - (time.monotonic() - down_at)))
            manager.up(stack, lambda _m: None)
            wait_for_decision(settings, outage[-1].transaction_id, timeout=90)
            wait_until(lambda: _health(port)["status"] == "ok", 30, f"{name} reported back")
            assert degraded_gauge(port, name) == 0.0

        kafka = service(stack, "kafka")
        kafka.stop()
        wait_until(reports(port, "kafka"), 30, "/healthz reports kafka")
        manager.up(stack, lambda _m: None)
        produce(settings, [encode(t) for t in phases[3]])
        wait_for_decision(settings, phases[3][-1].transaction_id, timeout=90)
        wait_until(lambda: _health(port)["status"] == "ok", 30, "kafka reported back")
    finally:
        stop.set()
        running.join(timeout=60)
    assert not running.is_alive()

    messages = [r.getMessage() for r in caplog.records if r.name.startswith("fraudgraph")]
    logged = "\n".join(r.getMessage() for r in caplog.records)  # every logger, the driver's too
    for secret in (stack.neo4j.password, stack.postgres.password):
        assert secret and secret not in logged
    for name in ("neo4j", "postgres", "kafka"):
        down = [m for m in messages if m.startswith(f"{name} unavailable")]
        assert 1 <= len(down) <= 1 + NEO4J_DOWN // LOG_EVERY + 1, (name, down)
        assert f"{name} is back" in messages

    # the same decisions as a daemon that never saw an outage, and their rows in PostgreSQL
    everything = [t for p in phases for t in p]
    got = outcome(settings)
    assert set(got) == {t.transaction_id for t in everything}
    assert {got[p[-1].transaction_id][0] for p in phases} == {"block"}  # each card test
    clean = dataclasses.replace(settings, postgres=dataclasses.replace(
        settings.postgres, schema=f"test_daemon_{unique}_clean"),
        topics=dataclasses.replace(settings.topics, decisions=f"test-daemon-{unique}-clean-d",
                                   alerts=f"test-daemon-{unique}-clean-a",
                                   training=f"test-daemon-{unique}-clean-t"))
    daemon.run(clean, config, daemon.DaemonOptions(group=f"test-clean-{unique}",
                                                   until_idle=3.0, graph_wait=1.0),
               DecoderConfig(),
               stop=threading.Event())
    assert got == outcome(clean)
    for scope in (settings, clean):
        store = connect.blocklist(scope)
        try:
            assert store.counts()["flagged_transactions"] == 2 * len(phases)  # probes 3 and 4
        finally:
            store.close()

