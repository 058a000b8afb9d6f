"""The bench's figures and its soak picture, without a stack."""

from __future__ import annotations

import threading
import types
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from detectors.config import DetectorConfig
from fraudgraph.bench import BenchResult, plot_samples
from fraudgraph.settings import load_settings


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
    from fraudgraph.stream import daemon

    monkeypatch.setattr(daemon, "LATENCY_SAMPLES", 100)
    stats = daemon.DaemonStats()
    for i in range(1000):
        daemon._sample_latency(stats, float(i))
    assert stats.latency_stride == 16 and len(stats.latencies_ms) <= 100
    # an even sample in stream order, from the first decision to the last stride
    assert list(stats.latencies_ms) == [float(i) for i in range(0, 1000, 16)]


class _FakeRun:
    """``bench.run`` with every service and child process faked: what it started,
    stopped and deleted, in order, in ``events``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, bench: Any, tmp_path: Path,
                 fail: bool = False) -> None:
        from fraudgraph import peer
        from fraudgraph.stream import daemon

        self.events: list[tuple[Any, ...]] = []
        self.processes: list[_FakeProcess] = []
        self.cpu = {1: 10.0, 2: 20.0}
        self.fail = fail
        self.settings = load_settings({"FRAUDGRAPH_DATA_DIR": str(tmp_path / "data"),
                                       "FRAUDGRAPH_CACHE_DIR": str(tmp_path / "cache")})
        monkeypatch.setattr(bench.uuid, "uuid4", lambda: uuid.UUID(int=0xABCDEF12 << 96))
        monkeypatch.setattr(bench.kafka, "ensure_topics", lambda _b, names, _p: self.events
                            .append(("ensure_topics", tuple(names))))
        monkeypatch.setattr(bench.kafka, "delete_topics", lambda _b, names: self.events
                            .append(("delete_topics", tuple(names))))
        monkeypatch.setattr(bench.subprocess, "Popen", self.popen)
        monkeypatch.setattr(bench.os, "wait4", self.wait4)
        monkeypatch.setattr(bench, "_service_pids",
                            lambda _s: {"kafka": [1], "neo4j": [2]})
        monkeypatch.setattr(bench, "_cpu", lambda pids: self.cpu[pids[0]])
        monkeypatch.setattr(bench, "_group_lag", lambda _b, group, topic: self.events
                            .append(("lag", group, topic)) or 7)
        monkeypatch.setattr(daemon, "run", self.daemon)
        monkeypatch.setattr(bench.connect, "blocklist", lambda s: _FakeStore(self.events, s))
        monkeypatch.setattr(peer, "run", self.peer)
        monkeypatch.setattr(bench.kafka, "read_all", self.read_all)
        monkeypatch.setattr(bench.kafka, "topic_names", lambda _b: [
            *TOPICS, "bench-abcdef12-peer-decisions", "changelog__bench-peer-abcdef12--x",
            "someone-elses"])

    def popen(self, args: list[str], env: dict[str, str], **_kw: Any) -> _FakeProcess:
        process = _FakeProcess(100 + len(self.processes), args[3], self.events)
        self.processes.append(process)
        self.events.append(("start", args[3], *args[4:], env["FRAUDGRAPH_TOPIC_TRANSACTIONS"]))
        return process

    def wait4(self, pid: int, _options: int) -> tuple[int, int, Any]:
        """The generator (2 CPU seconds) or the projector (8), by its pid."""
        process = next(p for p in self.processes if p.pid == pid)
        process.returncode = 0
        if process.command == "project":
            self.events.append(("waited", "project"))
            return pid, 0, types.SimpleNamespace(ru_utime=6.0, ru_stime=2.0)
        self.events.append(("generated", pid))
        return pid, 0, types.SimpleNamespace(ru_utime=1.5, ru_stime=0.5)

    def daemon(self, settings: Any, _config: Any, options: Any, _decoder: Any,
               stop: threading.Event, ready: threading.Event | None = None) -> Any:
        from fraudgraph.stream.daemon import DaemonStats

        self.events.append(("daemon", settings.topics.transactions, settings.postgres.schema,
                            options.group, options.max_messages, options.graph_wait,
                            options.batch_size, options.until_idle))
        if options.batch_size == 1:  # the one-at-a-time reference
            return DaemonStats(outcomes=Counter(allow=options.max_messages),
                               first_batch_at=1.0, last_commit_at=3.0)
        assert ready is not None
        ready.set()
        if self.fail:
            raise RuntimeError("kafka went away")
        self.cpu = {1: 12.5, 2: 21.0}
        stats = DaemonStats(outcomes=Counter(allow=90, review=8, block=2),
                            stage_seconds={"decide": 1.5}, first_batch_at=1.0,
                            last_commit_at=6.0, checkpoints=2, checkpoint_pause=0.004,
                            checkpoint_cpu=30.0,
                            neo4j_calls={"batch_features": (4, 0.25)},
                            decisions={"t1": "allow", "t2": "review", "t3": "allow"})
        stats.latencies_ms.extend([3.0, 4.0])
        return stats

    def peer(self, _cache: Path, _bootstrap: str, topic: str, out: str, group: str,
             count: int, state_dir: Path) -> Any:
        self.events.append(("peer", topic, out, group, count, state_dir.name))
        return types.SimpleNamespace(messages=count, seconds=4.0, cpu_seconds=3.0)

    def read_all(self, _bootstrap: str, topic: str) -> list[Any]:
        self.events.append(("read", topic))
        return [types.SimpleNamespace(value=lambda v=value: v) for value in (
            b'{"transaction_id": "t1", "decision": "allow"}',
            b'{"transaction_id": "t2", "decision": "allow"}',
            b'{"transaction_id": "t3", "decision": "allow"}')]


class _FakeProcess:
    def __init__(self, pid: int, command: str, events: list[tuple[Any, ...]]) -> None:
        self.pid, self.command, self.events = pid, command, events
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode

    def kill(self) -> None:
        self.events.append(("killed", self.command))


class _FakeStore:
    def __init__(self, events: list[tuple[Any, ...]], settings: Any) -> None:
        self.events = events
        events.append(("blocklist", settings.postgres.schema))

    def drop_schema(self, schema: str) -> None:
        self.events.append(("drop_schema", schema))

    def close(self) -> None:
        self.events.append(("store closed",))


TOPICS = tuple(f"bench-abcdef12-{name}" for name in
               ("transactions", "decisions", "alerts", "training", "labels", "dlq"))


def test_a_backlog_run_produces_first_then_decides_measures_and_cleans_up(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from fraudgraph import bench
    from fraudgraph.bench import run

    fake = _FakeRun(monkeypatch, bench, tmp_path)
    (tmp_path / "scratch").mkdir()
    (tmp_path / "scratch" / "abcdef12.jsonl").write_text("{}\n")  # the generator's labels
    reports: list[str] = []
    result = run(fake.settings, DetectorConfig(), 100, 0.0, 7, True, tmp_path / "scratch",
                 reports.append, one_at_a_time=40, quix=True, graph_wait=None)
    assert fake.events == [
        ("ensure_topics", TOPICS),
        ("start", "generate", "-n", "100", "--rate", "0.0", "--seed", "7", "--labels",
         str(tmp_path / "scratch" / "abcdef12.jsonl"), TOPICS[0]),
        ("generated", 100),
        ("start", "project", "--until-idle", "5s", "--metrics-port", "0", "--group",
         "bench-projection-abcdef12", TOPICS[0]),
        ("daemon", TOPICS[0], "bench_abcdef12", "bench-detector-abcdef12", 100, None, 5000,
         5.0),
        ("lag", "bench-projection-abcdef12", TOPICS[0]),
        ("waited", "project"),
        ("daemon", TOPICS[0], "bench_abcdef12", "bench-single-abcdef12", 40, 0.0, 1, 5.0),
        ("peer", TOPICS[0], "bench-abcdef12-peer-decisions", "bench-peer-abcdef12", 100,
         "quix-abcdef12"),
        ("read", "bench-abcdef12-peer-decisions"),
        ("delete_topics", (*TOPICS, "bench-abcdef12-peer-decisions",
                           "changelog__bench-peer-abcdef12--x")),
        ("blocklist", "bench_abcdef12"),
        ("drop_schema", "bench_abcdef12"),
        ("store closed",),
    ]
    assert reports == [f"producing 100 transactions to {TOPICS[0]}", "deciding",
                       "waiting for the projection to catch up",
                       "reference: the same detector one message at a time, 40 messages",
                       "reference: the Quix Streams peer (legacy rules), 100 messages"]
    assert not (tmp_path / "scratch" / "abcdef12.jsonl").exists()
    assert (result.decisions, result.busy_seconds, list(result.latencies_ms)) == (
        100, 5.0, [3.0, 4.0])
    assert result.outcomes == {"allow": 90, "review": 8, "block": 2}
    assert result.stage_seconds == {"decide": 1.5} and result.projection_lag_at_end == 7
    assert list(result.cpu_seconds) == ["detector daemon", "projector", "kafka", "neo4j"]
    assert result.cpu_seconds["projector"] == 8.0  # its own, not the generator's
    assert 30.0 <= result.cpu_seconds["detector daemon"] < 40.0  # its checkpoint writers too
    assert (result.cpu_seconds["kafka"], result.cpu_seconds["neo4j"]) == (2.5, 1.0)
    assert result.one_at_a_time is not None and result.ratio_to(result.one_at_a_time) == 20 / 20
    assert result.peer is not None and result.ratio_to(result.peer) == 20 / 25
    assert result.peer.agreement == 2 / 3  # t2: the daemon reviewed it, the peer allowed it
    figures = result.as_json()
    assert figures["outcomes"] == {"allow": 90, "review": 8, "block": 2}
    assert figures["checkpoints"] == {"written": 2, "longest_pause_ms": 4.0}
    assert figures["daemon_neo4j_calls"] == {"batch_features": {"calls": 4, "seconds": 0.25}}
    assert figures["quix_peer"]["ratio"] == 0.8 and figures["one_at_a_time"]["ratio"] == 1.0
    assert figures["graph_wait_limit_seconds"] is None  # forever


def test_an_offered_load_starts_when_the_daemon_is_ready_and_a_failure_still_cleans_up(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from fraudgraph import bench
    from fraudgraph.bench import run

    fake = _FakeRun(monkeypatch, bench, tmp_path, fail=True)
    reports: list[str] = []
    with pytest.raises(RuntimeError, match="kafka went away"):
        run(fake.settings, DetectorConfig(), 100, 50.0, 7, True, tmp_path / "scratch",
            reports.append)
    assert reports == ["offering 100 transactions at 50/s", "deciding"]
    daemon_at = fake.events.index(  # an offered load: 30 s to the first message
        ("daemon", TOPICS[0], "bench_abcdef12", "bench-detector-abcdef12", 100, 60.0, 5000,
         30.0))
    generated_at = fake.events.index(("generated", 101))
    assert fake.events[0][0] == "ensure_topics" and fake.events[1][1] == "project"
    assert daemon_at < generated_at  # the load waits for the daemon's partitions
    assert fake.events[-5:] == [
        ("killed", "project"),
        ("delete_topics", (*TOPICS, "bench-abcdef12-peer-decisions",
                           "changelog__bench-peer-abcdef12--x")),
        ("blocklist", "bench_abcdef12"), ("drop_schema", "bench_abcdef12"), ("store closed",)]
    assert not any(e[0] in ("peer", "lag") for e in fake.events)


def test_a_failure_before_the_daemon_still_cleans_up_and_each_step_runs_alone(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The input fails to generate, then deleting the topics fails too: the schema is
    still dropped."""
    from fraudgraph import bench
    from fraudgraph.bench import run

    fake = _FakeRun(monkeypatch, bench, tmp_path)

    def no_input(*_args: Any) -> float:
        raise RuntimeError("the generator could not start")

    def no_kafka(*_args: Any) -> None:
        raise RuntimeError("kafka went away")

    monkeypatch.setattr(bench, "_generate", no_input)
    monkeypatch.setattr(bench.kafka, "delete_topics", no_kafka)
    with pytest.raises(RuntimeError, match="could not start"):
        run(fake.settings, DetectorConfig(), 100, 0.0, 7, True, tmp_path / "scratch",
            lambda _m: None)
    assert fake.events == [("ensure_topics", TOPICS), ("blocklist", "bench_abcdef12"),
                           ("drop_schema", "bench_abcdef12"), ("store closed",)]


def test_the_quix_peer_decides_like_the_legacy_preset() -> None:
    """The peer's rules (its ``decide``, fed by a dict where Quix keeps RocksDB) against
    fraudgraph's legacy preset on one generated stream.  They differ only where a
    holder pays with several cards: the peer keeps the holder's profile per card (Quix
    state lives under the message key), fraudgraph per user."""
    import importlib.util
    import itertools
    import json

    from detectors import config as cfg
    from detectors.blocklist import BlocklistCache
    from detectors.pipeline import Detector
    from ingest.generator import Generator, GeneratorConfig
    from ingest.transaction import encode

    spec = importlib.util.spec_from_file_location("quix_legacy", "peers/quix_legacy.py")
    assert spec is not None and spec.loader is not None
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)

    class State:  # Quix's per-key State, over a dict
        def __init__(self, data: dict[str, Any]) -> None:
            self.data = data

        def get(self, key: str, default: Any = None) -> Any:
            return self.data.get(key, default)

        def set(self, key: str, value: Any) -> None:
            self.data[key] = value

    txs = [tx for tx, _ in itertools.islice(Generator(GeneratorConfig(seed=42)), 20_000)]
    decided, _ = Detector(cfg.load("legacy")).decide_batch(
        txs, None, BlocklistCache(lambda since: ([], since), 1e9), 0)
    ours = {d.record.transaction_id: d.verdict.decision for d in decided}
    cards: dict[str, dict[str, Any]] = {}
    theirs = {tx.transaction_id: peer.decide(json.loads(encode(tx)),
                                             State(cards.setdefault(tx.card_id, {})))
              for tx in txs}
    assert all(out["transaction_id"] == tx for tx, out in theirs.items())
    flagged = sum(out["decision"] != "allow" for out in theirs.values())
    assert 0.15 * len(txs) < flagged < 0.25 * len(txs)  # the legacy rules flag a lot
    same = sum(ours[tx] == out["decision"] for tx, out in theirs.items())
    assert same / len(txs) > 0.96
