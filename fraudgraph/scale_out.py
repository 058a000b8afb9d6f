"""Scale-out check (`fraudgraph bench-scale-out`): the same stream decided by one daemon
and one projector, then by several of each in their consumer groups, and the decisions
compared transaction by transaction.

For each layout (``daemons + projectors``), in turn and alike:

1. an emptied graph (the layouts reuse the stream's ids, which a projection would skip
   as already written) and the run's own topics and blocklist schema;
2. the projectors (`fraudgraph project`) and the daemons (`fraudgraph run`, rule-state
   checkpoints off: daemons of one group on one data folder may not share a checkpoint)
   as processes, as a deployment runs them (on one host);
3. the stream (`fraudgraph generate`, the same seed for every layout) at the offered
   rate, or all at once first (``rate`` 0: a backlog);
4. once every process has stopped by itself (idle), the decisions topic read back:
   per transaction its decision and reason codes, the latency from its Kafka
   timestamp to its decision's, and the layout's throughput (decisions over the span
   from the first decision published to the last).

Then every layout after the first is compared with the first: the transactions whose
decision or reason codes differ, and which reason codes account for the differences.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from detectors.decision import DecisionRecord
from detectors.quality import percentile
from fraudgraph import bench, connect
from fraudgraph.settings import Settings
from graph.projection import clear_graph
from ingest import kafka

_DECISION = msgspec.json.Decoder(DecisionRecord)
IDLE_S = 20.0  # a process stops after this long without input (the others may still run)
DEADLINE_S = 1800.0  # the longest a layout may take once its input is all offered
JOIN_S = 120.0  # the longest the processes may take to join their groups


@dataclass(frozen=True)
class Layout:
    daemons: int
    projectors: int

    @property
    def name(self) -> str:
        return f"{self.daemons}+{self.projectors}"


@dataclass(frozen=True)
class Decided:
    """A transaction's decision as a layout published it."""

    decision: str
    codes: tuple[str, ...]  # its reason codes, in the order given
    latency_ms: float | None  # from its Kafka timestamp to the decision


@dataclass
class LayoutRun:
    layout: Layout
    decisions: dict[str, Decided] = field(default_factory=dict)  # transaction id -> decision
    published: int = 0  # decision records read back (a redelivery publishes one twice)
    first_decided_ms: int = 0  # when the first decision was published (Kafka timestamp)
    last_decided_ms: int = 0  # and the last

    @property
    def seconds(self) -> float:
        """From the first decision published to the last (the processes' start-up and
        group joins left out)."""
        return max(0.0, (self.last_decided_ms - self.first_decided_ms) / 1000)

    @property
    def per_second(self) -> float:
        return len(self.decisions) / self.seconds if self.seconds else 0.0

    def reason_codes(self) -> Counter[str]:
        """Transactions per reason code (what the layout's decisions rested on)."""
        return Counter(code for d in self.decisions.values() for code in set(d.codes))

    def latency(self, q: float) -> float:
        return percentile([d.latency_ms for d in self.decisions.values()
                           if d.latency_ms is not None], q)


@dataclass(frozen=True)
class Comparison:
    """One layout against the first, over the transactions both decided."""

    layout: Layout
    compared: int
    identical: int
    #: reason code -> transactions where one layout gave it and the other did not
    codes: Counter[str]
    examples: tuple[tuple[str, Decided, Decided], ...]  # (id, first layout's, this one's)

    @property
    def share(self) -> float:
        return self.identical / self.compared if self.compared else 0.0


def compare(first: LayoutRun, other: LayoutRun, examples: int = 5) -> Comparison:
    """Which transactions ``other`` decided differently from ``first`` (decision or reason
    codes), and the reason codes that differ."""
    common = sorted(first.decisions.keys() & other.decisions.keys())
    codes: Counter[str] = Counter()
    differ = []
    for tx in common:
        a, b = first.decisions[tx], other.decisions[tx]
        if a.decision == b.decision and a.codes == b.codes:
            continue
        differ.append((tx, a, b))
        codes.update(set(a.codes) ^ set(b.codes))
    return Comparison(other.layout, len(common), len(common) - len(differ), codes,
                      tuple(differ[:examples]))


def run(settings: Settings, layouts: Sequence[Layout], count: int, rate: float, seed: int,
        scratch: Path, report: Callable[[str], None], config: str = "default",
        warm_up: int = 0, label_delay_ms: int | None = None
        ) -> tuple[list[LayoutRun], list[Comparison]]:
    """Each layout over the same stream (EMPTIES the graph before each), then each
    compared with the first.  ``warm_up``: first, that many transactions of another
    seed through the first layout, not measured (a freshly started Neo4j is slower for
    its first minute, which would count against the first layout alone).
    ``label_delay_ms``: the generator's label delay (None: its default, 3 days; labels
    come 0.5 to 3 times that late, so most come after a short stream ends)."""
    extra = () if label_delay_ms is None else ("--label-delay", f"{label_delay_ms}ms")
    if warm_up:
        report(f"warming up: {warm_up:,} transactions through {layouts[0].name}")
        _layout(settings, layouts[0], warm_up, rate, seed + 1, scratch, lambda _m: None,
                config, extra)
    runs = [_layout(settings, layout, count, rate, seed, scratch, report, config, extra)
            for layout in layouts]
    return runs, [compare(runs[0], other) for other in runs[1:]]


def _layout(settings: Settings, layout: Layout, count: int, rate: float, seed: int,
            scratch: Path, report: Callable[[str], None], config: str,
            generator_options: Sequence[str] = ()) -> LayoutRun:
    report(f"{layout.name}: emptying the graph")
    driver = connect.neo4j(settings)
    try:
        clear_graph(driver)
    finally:
        driver.close()
    fresh = bench.fresh_run(settings, scratch)
    env = {**fresh.env, "FRAUDGRAPH_POSTGRES_SCHEMA": fresh.settings.postgres.schema}
    processes = _Processes(scratch / f"scale-{fresh.run_id}", env)
    generate = bench.generate_command(fresh, count, rate, seed, *generator_options)
    result = LayoutRun(layout)
    try:
        if rate <= 0:
            report(f"{layout.name}: producing {count:,} transactions")
            processes.finish([processes.start(generate)],
                             time.monotonic() + DEADLINE_S)
        groups = {f"scale-projection-{fresh.run_id}": layout.projectors,
                  f"scale-detector-{fresh.run_id}": layout.daemons}
        members = []
        for group, size in groups.items():
            command = ("project",) if "projection" in group else (
                "run", "--config", config, "--checkpoint-every", "0", "--batch-timeout",
                "0.01s")
            members += [processes.member(*command, "--group", group) for _ in range(size)]
        if rate > 0:  # the load starts once every process has its partitions
            _joined(fresh.settings.kafka.bootstrap, groups, processes,
                    time.monotonic() + JOIN_S)
            report(f"{layout.name}: offering {count:,} transactions at {rate:,.0f}/s")
            processes.finish([processes.start(generate)],
                             time.monotonic() + DEADLINE_S)
        report(f"{layout.name}: deciding")
        processes.finish(members, time.monotonic() + DEADLINE_S)
        _read_back(fresh.settings, result)
    finally:
        processes.kill()
        bench.clean_up(fresh, None, None)
    report(f"{layout.name}: {len(result.decisions):,} decided, {result.per_second:,.0f}/s")
    return result


class _Processes:
    """A layout's processes (`fraudgraph project / run / generate`), each with its output
    in a log file under ``folder`` (removed once all ended well), so a failure says why."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder, self.env = folder, env
        self.running: list[tuple[subprocess.Popen[bytes], Path]] = []

    def member(self, command: str, *args: str) -> subprocess.Popen[bytes]:
        return self.start([sys.executable, "-m", "fraudgraph", command, "--until-idle",
                           f"{IDLE_S:g}s", "--metrics-port", "0", *args])

    def start(self, argv: list[str]) -> subprocess.Popen[bytes]:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = self.folder / f"{len(self.running)}-{argv[3]}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(argv, env=self.env, stdout=out,
                                       stderr=subprocess.STDOUT)
        self.running.append((process, log))
        return process

    def check(self) -> list[subprocess.Popen[bytes]]:
        """The processes that have ended; one that failed is an error quoting its log."""
        ended = []
        for process, log in self.running:
            code = process.poll()
            if code is None:
                continue
            if code != 0:
                command = " ".join(str(a) for a in list(process.args)[3:5])  # type: ignore[arg-type]
                tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                raise RuntimeError(f"`fraudgraph {command}` exited with {code}: "
                                   + (" | ".join(tail) or "no output"))
            ended.append(process)
        return ended

    def finish(self, processes: list[subprocess.Popen[bytes]], deadline: float) -> None:
        """Until ``processes`` have stopped by themselves (any failure: an error)."""
        while not set(processes) <= set(self.check()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the processes did not stop within {DEADLINE_S:g} s")
            time.sleep(0.2)

    def kill(self) -> None:
        """Stop what still runs; the logs go when every process ended well."""
        clean = True
        for process, _ in self.running:
            if process.poll() is None:
                process.kill()
                process.wait()
                clean = False
            clean = clean and process.returncode == 0
        if clean:
            shutil.rmtree(self.folder, ignore_errors=True)


def _joined(bootstrap: str, groups: dict[str, int], processes: _Processes,
            deadline: float) -> None:
    """Until each group is stable with its members, each holding partitions."""
    waiting = dict(groups)
    while waiting:
        for group, members in list(waiting.items()):
            shares = kafka.group_assignment(bootstrap, group)
            if len(shares) == members and min(shares) > 0:
                del waiting[group]
        if processes.check():  # one stopped already, idle before any input came
            raise RuntimeError(f"a process stopped (idle for {IDLE_S:g} s) before the "
                               f"consumer groups were stable: {', '.join(waiting)}")
        if waiting and time.monotonic() > deadline:
            raise RuntimeError(f"consumer groups not stable after {JOIN_S:g} s: "
                               f"{', '.join(waiting)}")
        time.sleep(0.5)


def _read_back(settings: Settings, result: LayoutRun) -> None:
    """Each transaction's decision; the time it was published (the decision record's
    Kafka timestamp) gives the latency from its input's and the layout's span."""
    for message in kafka.read_all(settings.kafka.bootstrap, settings.topics.decisions):
        record = _DECISION.decode(message.value() or b"{}")
        published = message.timestamp()[1]
        result.published += 1
        latency = (None if record.produced_ms is None
                   else float(published - record.produced_ms))
        result.decisions[record.transaction_id] = Decided(
            record.decision, tuple(r.code for r in record.reasons), latency)
        result.last_decided_ms = max(result.last_decided_ms, published)
        result.first_decided_ms = min(result.first_decided_ms or published, published)


def as_json(count: int, rate: float, runs: Sequence[LayoutRun],
            comparisons: Sequence[Comparison],
            label_delay_ms: int | None = None) -> dict[str, Any]:
    return {
        "transactions": count, "offered_rate": rate or "backlog",
        "label_delay_ms": label_delay_ms,
        "layouts": [{"layout": r.layout.name, "daemons": r.layout.daemons,
                     "projectors": r.layout.projectors, "decided": len(r.decisions),
                     "records": r.published, "decisions_per_second": round(r.per_second, 1),
                     "latency_ms": {f"p{q}": round(r.latency(q), 1) for q in (50, 95, 99)},
                     "reason_codes": dict(r.reason_codes().most_common())}
                    for r in runs],
        "comparisons": [{"layout": c.layout.name, "compared": c.compared,
                         "identical": c.identical, "share": round(c.share, 6),
                         "differing_codes": dict(c.codes.most_common()),
                         "examples": [{"transaction_id": tx,
                                       "first": {"decision": a.decision, "codes": list(a.codes)},
                                       "this": {"decision": b.decision, "codes": list(b.codes)}}
                                      for tx, a, b in c.examples]}
                        for c in comparisons],
    }
