"""`fraudgraph bench`: the end-to-end benchmark, with references on the same input.

On fresh topics: generate COUNT transactions, either all before the daemon
starts (``rate=0``: sustained throughput from a backlog) or at a fixed rate
while it runs (latency at an offered load), with the projection consumer beside
it as in production.  Latency runs from the Kafka timestamp of a transaction to
its decision being acknowledged by Kafka.  Then, on the same topic, the
references its throughput is compared with:

* **one at a time**: the same daemon and detector with micro-batches of one message
  (per message its graph reads, its outputs acknowledged and its offset committed):
  what batching buys;
* **the Quix Streams peer** (``--peer quix``, :mod:`fraudgraph.peer`): the legacy
  system's three rules in a maintained Python streaming library, the fair match for
  ``--config legacy``; the share of its decisions equal to the daemon's says that it
  did the same work.

CPU seconds are measured per process: the daemon (this process), the load
generator and the projector (children), Kafka, Neo4j and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from detectors.config import DetectorConfig
from detectors.quality import percentile
from fraudgraph import connect, model_service, peer
from fraudgraph.errors import ConfigError
from fraudgraph.peer import Reference
from fraudgraph.settings import Settings
from fraudgraph.stack import manager
from fraudgraph.stream import daemon, projector
from ingest import kafka
from ingest.generator import GeneratorConfig
from ingest.labels import decode_label
from ingest.runs import read_records
from ingest.transaction import DecoderConfig
from learned.training import NotEnoughLabels

log = logging.getLogger(__name__)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: seconds without a message after which the measured daemon stops: from a backlog the
#: input is all there; an offered load starts once the daemon has its partitions, and a
#: freshly started Kafka can keep the load generator's producer waiting for seconds
BACKLOG_IDLE_S, OFFERED_IDLE_S = 5.0, 30.0
#: the default generator's transactions per day of event time (100,000 span about 14 days)
WARM_TX_PER_DAY = 7_000
SAMPLE_EVERY = 10.0  # seconds between memory / lag samples (soak runs)
#: the measured daemon's longest wait for the projection (`--graph-wait`): above the
#: daemon's own 10 s, which a freshly started Neo4j's first batches can outlast
GRAPH_WAIT_S = 60.0


@dataclass
class BenchResult:
    count: int
    offered_rate: float
    projection: bool
    graph_detail: str = "all"  # FRAUDGRAPH_GRAPH_DETAIL of the run
    decisions: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)  # decision → how many
    busy_seconds: float = 0.0
    latencies_ms: Sequence[float] = field(default_factory=list, repr=False)
    latency_stride: int = 1  # latencies_ms holds every latency_stride-th decision
    stage_seconds: dict[str, float] = field(default_factory=dict)
    model_version: str | None = None  # the learned model the daemon scored with
    model_seconds: float = 0.0  # its predict and explain calls (part of "decide")
    projection_lag_at_end: int | None = None  # transactions not yet in the graph
    projection_seconds: float | None = None
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    checkpoints: int = 0  # rule-state checkpoints written during the run
    checkpoint_pause: float = 0.0  # seconds: the longest the loop stopped for one
    #: seconds the daemon's batches waited for the projection and for the label worker
    graph_wait_on: dict[str, float] = field(default_factory=dict)
    #: batches decided before the graph held their time (the wait ran out): their graph
    #: checks saw less than as of their time, and the rate is not the as-of rate
    graph_behind: int = 0
    graph_wait_limit: float | None = None  # the daemon's --graph-wait (None: forever)
    #: the daemon's Neo4j calls (graph.detect): function -> (calls, wall seconds)
    neo4j_calls: dict[str, tuple[int, float]] = field(default_factory=dict)
    one_at_a_time: Reference | None = None
    peer: Reference | None = None
    #: every ``SAMPLE_EVERY`` s while deciding: (seconds, daemon RSS MB, lag, keys per
    #: rule-state table)
    samples: list[tuple[float, float, float, dict[str, float]]] = field(default_factory=list,
                                                                       repr=False)
    #: with ``trace_memory``: the allocation sites that grew most between the end of the
    #: warm-up and the end of the run (where, KB, blocks)
    memory_growth: list[tuple[str, float, int]] = field(default_factory=list, repr=False)

    @property
    def decisions_per_second(self) -> float:
        return self.decisions / self.busy_seconds if self.busy_seconds else 0.0

    @property
    def projection_per_second(self) -> float | None:
        if not self.projection_seconds:
            return None
        return self.count / self.projection_seconds

    def ratio_to(self, reference: Reference | None) -> float | None:
        """Throughput ratio, from a backlog only (at an offered rate both keep up or not)."""
        if self.offered_rate > 0 or reference is None or not reference.per_second:
            return None
        return self.decisions_per_second / reference.per_second

    def latency(self, q: float) -> float:
        """Percentile over the decisions after the warm-up (the first 2 s of offered load,
        or the first 1,000: connection set-up, JIT, caches)."""
        warmup = max(1000, round(2 * self.offered_rate)) // self.latency_stride
        return percentile(self.latencies_ms[warmup:] or self.latencies_ms, q)

    @property
    def model_share(self) -> float:
        """The learned model's share of the batches' time (all stages)."""
        total = sum(self.stage_seconds.values())
        return self.model_seconds / total if total else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "transactions": self.count, "offered_rate": self.offered_rate or "backlog",
            "projection_alongside": self.projection, "graph_detail": self.graph_detail,
            "decisions": self.decisions,
            "outcomes": dict(self.outcomes),
            "decisions_per_second": round(self.decisions_per_second, 1),
            "latency_ms": {f"p{q}": round(self.latency(q), 2) for q in (50, 95, 99)},
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
            "graph_wait_seconds": {k: round(v, 3) for k, v in self.graph_wait_on.items()},
            "batches_decided_before_the_graph": self.graph_behind,
            "graph_wait_limit_seconds": self.graph_wait_limit,
            "model": None if self.model_version is None else {
                "version": self.model_version, "seconds": round(self.model_seconds, 3),
                "share_of_batch_time": round(self.model_share, 4)},
            "projection_lag_at_end": self.projection_lag_at_end,
            "projection_per_second": (round(self.projection_per_second, 1)
                                      if self.projection_per_second else None),
            "cpu_seconds": {k: round(v, 2) for k, v in self.cpu_seconds.items()},
            "daemon_neo4j_calls": {name: {"calls": calls, "seconds": round(seconds, 3)}
                                   for name, (calls, seconds) in self.neo4j_calls.items()},
            "checkpoints": {"written": self.checkpoints,
                            "longest_pause_ms": round(self.checkpoint_pause * 1000, 2)},
            "one_at_a_time": None if self.one_at_a_time is None else {
                **self.one_at_a_time.as_json(), "ratio": _round(self.ratio_to(self.one_at_a_time))},
            "quix_peer": None if self.peer is None else {
                **self.peer.as_json(), "ratio": _round(self.ratio_to(self.peer))},
            "samples": [{"seconds": round(t, 1), "rss_mb": round(rss, 1), "lag": lag,
                         "rule_state": state} for t, rss, lag, state in self.samples],
            "memory_growth": [{"where": where, "kb": round(kb, 1), "blocks": blocks}
                              for where, kb, blocks in self.memory_growth],
        }


def _round(ratio: float | None) -> float | None:
    return None if ratio is None else round(ratio, 2)


def run(settings: Settings, config: DetectorConfig, count: int, rate: float, seed: int,
        projection: bool, scratch: Path, report: Callable[[str], None],
        batch_timeout: float = daemon.DaemonOptions.batch_timeout,
        one_at_a_time: int = 5_000, trace_memory: bool = False,
        model_count: int = 0, quix: bool = False, promote: bool = True,
        graph_wait: float | None = GRAPH_WAIT_S) -> BenchResult:
    """One bench run as the module docstring describes, in this order:

    1. fresh topics (and a blocklist schema) for the run;
    2. from a backlog (``rate`` 0) the whole input now; else once the daemon has its
       partitions, at ``rate``, from a thread;
    3. the projector beside the daemon (``projection``);
    4. the daemon, until idle or ``count`` decisions;
    5. the projection's lag when the daemon finished, then its catch-up;
    6. CPU seconds of the services; the references over the same topic (the first
       ``one_at_a_time`` messages one at a time; with ``quix`` the peer over all);
    7. always, even after a failure: the run's topics, schema and labels file are
       removed.

    With ``model_count``, first a learned model is trained and promoted in the run's
    registry (:func:`_warm_model`), so the measured daemon scores with it; with
    ``promote`` False it is trained and left unpromoted, so the rules decide on the same
    warm graph (the baseline of the model's cost).  ``graph_wait``: the daemon's
    longest wait for the projection (None: forever).
    """
    if model_count and not config.model.enabled:
        raise ConfigError(f"--model needs a config whose [model] is enabled ({config.name} "
                          "turns it off: its daemon logs no feature vectors to train on)")
    fresh = fresh_run(settings, scratch)
    result = BenchResult(count, rate, projection, settings.neo4j.detail)
    result.graph_wait_limit = graph_wait
    ready = threading.Event()  # set by the daemon once it has joined its consumer group
    producer: threading.Thread | None = None
    projector: _Projector | None = None

    def produce_when_ready() -> None:
        ready.wait(120)  # the daemon has joined its group: latency excludes the join
        result.cpu_seconds["load generator"] = _generate(fresh, count, rate, seed, report)

    try:
        if model_count:
            _warm_model(fresh, config, model_count, seed + 1, scratch, report, promote)
        if rate <= 0:
            report(f"producing {count:,} transactions to {fresh.topics['transactions']}")
            _generate(fresh, count, rate, seed, report)
        before = CpuBefore.take(settings)
        projector = _Projector(fresh) if projection else None
        if rate > 0:
            report(f"offering {count:,} transactions at {rate:,.0f}/s")
            producer = threading.Thread(target=produce_when_ready, name="bench-producer")
            producer.start()
        report("deciding")
        decisions = _decide(fresh, config, count, batch_timeout, projection, trace_memory,
                            ready, result, keep=quix, until_idle=OFFERED_IDLE_S if rate > 0
                            else BACKLOG_IDLE_S)
        if producer is not None:
            producer.join()
        if projector is not None:
            projector.finish(result, report)
        result.cpu_seconds.update(before.services_since())
        if one_at_a_time:
            report(f"reference: the same detector one message at a time, "
                   f"{min(count, one_at_a_time):,} messages")
            result.one_at_a_time = _one_at_a_time(fresh, config, min(count, one_at_a_time))
        if quix:
            report(f"reference: the Quix Streams peer (legacy rules), {count:,} messages")
            result.peer = _quix_peer(fresh, scratch, count, decisions)
    finally:
        ready.set()  # a producer still waiting for a daemon that failed goes on at once
        clean_up(fresh, producer, projector)
    return result


@dataclass(frozen=True)
class Fresh:
    """A run's own resources: fresh topics and blocklist schema, and the labels file."""

    run_id: str
    topics: dict[str, str]  # role ("transactions", "decisions", …) → this run's topic
    settings: Settings  # the caller's, pointed at those topics and that schema
    env: dict[str, str]  # the environment of the child processes: the same topics
    labels_path: Path


def fresh_run(settings: Settings, scratch: Path) -> Fresh:
    """Create the run's topics (and the scratch folder); the schema comes with the first
    connection to the blocklist."""
    run_id = uuid.uuid4().hex[:8]
    names = {name: f"bench-{run_id}-{name}" for name in
             ("transactions", "decisions", "alerts", "training", "labels", "dlq")}
    bench = dataclasses.replace(
        settings, topics=dataclasses.replace(settings.topics, **names),
        postgres=dataclasses.replace(settings.postgres, schema=f"bench_{run_id}"))
    kafka.ensure_topics(bench.kafka.bootstrap, bench.topics.all(), bench.kafka.partitions)
    scratch.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **{f"FRAUDGRAPH_TOPIC_{k.upper()}": v for k, v in names.items()}}
    return Fresh(run_id, names, bench, env, scratch / f"{run_id}.jsonl")


def generate_command(fresh: Fresh, count: int, rate: float, seed: int,
                     *extra: str) -> list[str]:
    """`fraudgraph generate` of ``count`` transactions of ``seed`` at ``rate`` (0: at once)
    into the run's topics (``fresh.env``), its labels to the run's labels file; ``extra``:
    more of its options."""
    return [sys.executable, "-m", "fraudgraph", "generate", "-n", str(count),
            "--rate", str(max(rate, 0)), "--seed", str(seed), "--labels", str(fresh.labels_path),
            *extra]


def _generate(fresh: Fresh, count: int, rate: float, seed: int,
              report: Callable[[str], None], *extra: str) -> float:
    """Generate the input in its own process (`fraudgraph generate`), so the daemon's
    memory samples and CPU time are the daemon's alone; returns its CPU seconds."""
    generator = subprocess.Popen(generate_command(fresh, count, rate, seed, *extra),
                                 env=fresh.env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(generator.pid, 0)
    generator.returncode = os.waitstatus_to_exitcode(status)
    if generator.returncode != 0:
        report(f"the load generator stopped with exit status {generator.returncode}")
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class CpuBefore:
    """CPU seconds used so far by the local stack's services, to subtract from the
    figures at the end of a run (this bench's and ``bench-projection``'s)."""

    services: dict[str, list[int]]  # service → its pids
    service_seconds: dict[str, float]

    @classmethod
    def take(cls, settings: Settings) -> CpuBefore:
        services = _service_pids(settings)
        return cls(services, {name: _cpu(pids) for name, pids in services.items()})

    def services_since(self) -> dict[str, float]:
        return {name: _cpu(pids) - self.service_seconds[name]
                for name, pids in self.services.items()}


class _Projector:
    """`fraudgraph project` beside the daemon (as in production), in its own group; it
    stops by itself after 5 s without input."""

    IDLE_S = 5.0
    CATCH_UP_S = 1800.0  # the longest the bench waits for it once the daemon is done

    def __init__(self, fresh: Fresh) -> None:
        self.group = f"bench-projection-{fresh.run_id}"
        self.bootstrap, self.topic = fresh.settings.kafka.bootstrap, fresh.topics["transactions"]
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fraudgraph", "project", "--until-idle", f"{self.IDLE_S:g}s",
             "--metrics-port", "0", "--group", self.group],
            env=fresh.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def finish(self, result: BenchResult, report: Callable[[str], None]) -> None:
        """Once the daemon is done: the projection's lag at that moment, then wait for it
        to catch up; its rate and its own CPU seconds go to ``result``."""
        result.projection_lag_at_end = _group_lag(self.bootstrap, self.group, self.topic)
        report("waiting for the projection to catch up")
        deadline = time.monotonic() + self.CATCH_UP_S
        while True:
            done, status, usage = os.wait4(self.process.pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.process.args, self.CATCH_UP_S)
            time.sleep(0.2)
        self.process.returncode = os.waitstatus_to_exitcode(status)
        result.projection_seconds = time.monotonic() - self.started - self.IDLE_S
        result.cpu_seconds["projector"] = usage.ru_utime + usage.ru_stime

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()


def _decide(fresh: Fresh, config: DetectorConfig, count: int, batch_timeout: float,
            projection: bool, trace_memory: bool, ready: threading.Event,
            result: BenchResult, keep: bool = False,
            until_idle: float = 5.0) -> dict[str, str]:
    """Run the daemon over the run's input until it is idle for ``until_idle`` seconds
    (or has decided ``count``), sampling memory and lag meanwhile; its figures, CPU
    seconds, samples and (``trace_memory``) memory growth go to ``result``; returns its
    decisions (id → decision) with ``keep`` (the peer's comparison), else none."""
    # With the projection alongside, each batch waits until the graph holds its time (as
    # in production); without it nothing would come, so the graph checks read what is there.
    options = daemon.DaemonOptions(group=f"bench-detector-{fresh.run_id}",
                                   until_idle=until_idle, max_messages=count,
                                   batch_timeout=batch_timeout,
                                   graph_wait=result.graph_wait_limit if projection else 0.0,
                                   keep_decisions=keep)
    cpu_started = time.process_time()
    sampling = threading.Event()
    warm: list[tracemalloc.Snapshot] = []
    if trace_memory:
        tracemalloc.start()
    sampler = threading.Thread(target=_sample, args=(result.samples, sampling, warm),
                               daemon=True)
    sampler.start()
    stats = daemon.run(fresh.settings, config, options, DecoderConfig(),
                       stop=threading.Event(), ready=ready)
    sampling.set()
    if trace_memory:
        result.memory_growth = _growth(warm[0] if warm else None)
    # its forked checkpoint writers included
    result.cpu_seconds["detector daemon"] = (time.process_time() - cpu_started
                                             + stats.checkpoint_cpu)
    result.decisions, result.busy_seconds = sum(stats.outcomes.values()), stats.busy_seconds
    result.outcomes = {d: stats.outcomes.get(d, 0) for d in ("allow", "review", "block")}
    result.latencies_ms, result.stage_seconds = stats.latencies_ms, stats.stage_seconds
    result.latency_stride = stats.latency_stride
    result.model_seconds = stats.model_seconds
    result.neo4j_calls = stats.neo4j_calls
    result.graph_wait_on = stats.graph_wait_on
    result.graph_behind = stats.graph_behind
    result.model_version = stats.model_version  # the model the daemon scored with, if any
    result.checkpoints, result.checkpoint_pause = stats.checkpoints, stats.checkpoint_pause
    return stats.decisions


def _warm_model(fresh: Fresh, config: DetectorConfig, count: int, seed: int, scratch: Path,
                report: Callable[[str], None], promote: bool = True) -> str:
    """A model for the measured run: ``count`` transactions of another seed decided by
    the rules (projection first, then the daemon: their vectors logged), trained with
    the generator's labels and promoted in the run's own registry.  The warm-up's
    topics and schema are removed; its version is returned.

    The warm-up's population is its own (``--id-prefix w``: another seed numbers its
    users, cards and devices from 0 too, and sharing the ids would merge two strangers
    into one: shared cards and devices everywhere, rings, most of the measured run
    blocked), and its traffic ends where the measured run's begins."""
    warm = fresh_run(fresh.settings, scratch)
    days = -(-count // WARM_TX_PER_DAY)
    start = datetime.fromtimestamp(GeneratorConfig().start_ms / 1000 - days * 86_400, UTC)
    try:
        report(f"model warm-up: {count:,} transactions of seed {seed}, decided by the rules")
        _generate(warm, count, 0, seed, report, "--id-prefix", "w", "--start",
                  start.isoformat().replace("+00:00", "Z"))
        projector.run(warm.settings, projector.ProjectorOptions(
            group=f"bench-warm-projection-{warm.run_id}", until_idle=3.0), DecoderConfig())
        # the warm-up's registry (its own schema) has no model yet: the rules decide,
        # and the vectors the model trains on are logged
        options = daemon.DaemonOptions(group=f"bench-warm-detector-{warm.run_id}",
                                       until_idle=3.0, max_messages=count, graph_wait=None,
                                       labels=False)
        daemon.run(warm.settings, config, options, DecoderConfig(), stop=threading.Event())
        frauds = {label.transaction_id: label.reported_ms for label in
                  (decode_label(raw, max_future_ms=None)[0]
                   for _, raw in read_records(warm.labels_path)) if label.label == "fraud"}
        store = connect.blocklist(fresh.settings)
        try:
            trained = model_service.train(
                store, model_service.read_logged(warm.settings), frauds,
                model_service.TrainRequest(label_delay_ms=GeneratorConfig().label_delay_ms,
                                           promote=promote))
        except NotEnoughLabels as exc:
            raise ConfigError(f"{exc}: --model {count:,} is too little traffic to train on "
                              "(labels come days late): give it 80000 or more") from None
        finally:
            store.close()
        report(f"model {trained.version}: validation AP {trained.metrics['ap']:.3f}"
               + ("" if promote else " (not promoted: the rules decide)"))
        return trained.version
    finally:
        kafka.delete_topics(warm.settings.kafka.bootstrap, warm.topics.values())
        warm.labels_path.unlink(missing_ok=True)
        _drop_schema(warm.settings)


def _one_at_a_time(fresh: Fresh, config: DetectorConfig, count: int) -> Reference:
    """The same daemon over the first ``count`` messages with batches of one (its own
    group; the graph holds everything by now, so no read waits for it)."""
    cpu_started = time.process_time()
    stats = daemon.run(fresh.settings, config, daemon.DaemonOptions(
        group=f"bench-single-{fresh.run_id}", batch_size=1, until_idle=5.0,
        max_messages=count, graph_wait=0.0, labels=False, checkpoint_every=None),
        DecoderConfig(), stop=threading.Event())
    return Reference(sum(stats.outcomes.values()), stats.busy_seconds,
                     time.process_time() - cpu_started)


def _quix_peer(fresh: Fresh, scratch: Path, count: int, ours: dict[str, str]) -> Reference:
    """The Quix Streams peer over the same topic (its decisions to a topic of the run),
    and the share of its decisions equal to the daemon's."""
    out = f"bench-{fresh.run_id}-peer-decisions"
    state_dir = scratch / f"quix-{fresh.run_id}"
    try:
        figures = peer.run(fresh.settings.cache_dir, fresh.settings.kafka.bootstrap,
                           fresh.topics["transactions"], out, f"bench-peer-{fresh.run_id}",
                           count, state_dir)
        theirs = {}
        for message in kafka.read_all(fresh.settings.kafka.bootstrap, out):
            record = json.loads(message.value() or b"{}")
            theirs[record["transaction_id"]] = record["decision"]
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
    common = theirs.keys() & ours.keys()
    same = sum(1 for tx in common if theirs[tx] == ours[tx])
    return Reference(figures.messages, figures.seconds, figures.cpu_seconds,
                     same / len(common) if common else None)


def clean_up(fresh: Fresh, producer: threading.Thread | None,
              projector: _Projector | None) -> None:
    """Whatever happened: wait for the load generator, stop the projector, delete the
    run's topics (the peer's too: their names hold the run's id), its blocklist schema
    and its scratch ground truth; a step that fails is logged and the others still run."""
    bootstrap = fresh.settings.kafka.bootstrap
    steps: list[tuple[str, Callable[[], object]]] = [
        ("wait for the load generator", lambda: producer.join() if producer else None),
        ("stop the projector", lambda: projector.kill() if projector else None),
        ("delete the run's topics", lambda: kafka.delete_topics(bootstrap, dict.fromkeys([
            *fresh.topics.values(),
            *(t for t in kafka.topic_names(bootstrap) if fresh.run_id in t)]))),
        ("remove the labels file", lambda: fresh.labels_path.unlink(missing_ok=True)),
        ("drop the run's schema", lambda: _drop_schema(fresh.settings)),
    ]
    for what, step in steps:
        try:
            step()
        except Exception as exc:  # whatever it was, the next steps still clean up
            log.error("bench clean-up: could not %s (%s); run %s", what, exc, fresh.run_id)


def _drop_schema(settings: Settings) -> None:
    """Drop the run's own blocklist schema."""
    store = connect.blocklist(settings)
    try:
        store.drop_schema(settings.postgres.schema)
    finally:
        store.close()


STATE_TABLES = ("cards", "users", "devices", "ips")
TRACE_WARMUP_S = 180.0  # --trace-memory compares the end of the run with this point


def _growth(warm: tracemalloc.Snapshot | None, top: int = 15) -> list[tuple[str, float, int]]:
    """The allocation sites (file:line) that grew most since ``warm``, then stop tracing."""
    final = tracemalloc.take_snapshot()
    tracemalloc.stop()
    if warm is None:
        return []
    grown = sorted((stat for stat in final.compare_to(warm, "lineno") if stat.size_diff > 0),
                   key=lambda stat: stat.size_diff, reverse=True)
    return [(str(stat.traceback[0]), stat.size_diff / 1024, stat.count_diff)
            for stat in grown[:top]]


def _sample(samples: list[tuple[float, float, float, dict[str, float]]],
            done: threading.Event, warm: list[tracemalloc.Snapshot]) -> None:
    started = time.monotonic()
    while not done.wait(SAMPLE_EVERY):
        if tracemalloc.is_tracing() and not warm and \
                time.monotonic() - started >= TRACE_WARMUP_S:
            warm.append(tracemalloc.take_snapshot())
        rss_kb = next((int(line.split()[1]) for line in
                       Path("/proc/self/status").read_text().splitlines()
                       if line.startswith("VmRSS:")), 0)
        lag = REGISTRY.get_sample_value("fraudgraph_detector_lag_messages") or 0.0
        state = {table: REGISTRY.get_sample_value("fraudgraph_detector_rule_state_keys",
                                                  {"table": table}) or 0.0
                 for table in STATE_TABLES}
        samples.append((time.monotonic() - started, rss_kb / 1024, lag, state))


def _group_lag(bootstrap: str, group: str, topic: str) -> int:
    """Messages of ``topic`` that consumer ``group`` has not committed yet."""
    consumer = kafka.consumer(bootstrap, group)
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        committed = consumer.committed([kafka.TopicPartition(topic, p) for p in partitions],
                                       timeout=10)
        lag = 0
        for tp in committed:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            lag += high - (tp.offset if tp.offset >= 0 else low)
        return lag
    finally:
        consumer.close()


def _service_pids(settings: Settings) -> dict[str, list[int]]:
    """The local stack's processes (PostgreSQL: the postmaster and its children)."""
    pids = {s.name: [s.pid] for s in manager.status(settings) if s.pid}
    if "postgres" in pids:
        parent = pids["postgres"][0]
        pids["postgres"] += [int(p.name) for p in Path("/proc").iterdir()
                             if p.name.isdigit() and _ppid(int(p.name)) == parent]
    return pids


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _cpu(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far, with their reaped children
    (a PostgreSQL backend that ended is counted by the postmaster), from /proc."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / CLOCK_TICKS


def plot_samples(samples: Sequence[dict[str, Any]], path: Path) -> Path:
    """A soak run's picture: daemon RSS, consumer lag and the rule-state tables' keys
    over time (``samples`` as in :meth:`BenchResult.as_json`), one panel each, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s["seconds"] / 60 for s in samples]
    fig, axes = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
    axes[0].plot(minutes, [s["rss_mb"] for s in samples], linewidth=1.2)
    axes[0].set_ylabel("daemon RSS (MB)", fontsize=9)
    axes[1].plot(minutes, [s["lag"] for s in samples], linewidth=1.2)
    axes[1].set_ylabel("consumer lag (messages)", fontsize=9)
    for table in STATE_TABLES:
        axes[2].plot(minutes, [s["rule_state"].get(table, 0) for s in samples], linewidth=1.2,
                     label=table)
    axes[2].set_ylabel("rule-state keys", fontsize=9)
    axes[2].legend(fontsize=8, loc="upper left")
    for ax in axes:
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("minutes")
    fig.suptitle("fraudgraph bench: soak")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
