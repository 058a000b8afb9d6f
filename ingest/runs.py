"""Long-running ingest jobs behind `fraudgraph generate` and `fraudgraph produce`.

Each job reports progress through a callback and returns a :class:`RunStats`
for the CLI's summary table.  Output to Kafka is keyed by ``card_id`` (so a
card's transactions stay in order on one partition) with an idempotent,
batching producer; labels are keyed by ``transaction_id``.
"""

from __future__ import annotations

import csv
import heapq
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from ingest.dlq import dlq_record
from ingest.generator import Generator, Label, label_for, report_ms
from ingest.publish import Publisher
from ingest.transaction import DecodeError, DecoderConfig, Transaction, decode, encode

Progress = Callable[[int], None]
_LABEL_ENCODER = msgspec.json.Encoder()


@dataclass
class RunStats:
    transactions: int = 0
    rejected: int = 0
    labels: int = 0
    labels_published: int = 0
    by_scenario: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0

    @property
    def fraud(self) -> int:
        return sum(self.by_scenario.values())

    @property
    def rate(self) -> float:
        return self.transactions / self.elapsed if self.elapsed else 0.0


class Pacer:
    """Keeps a loop at ``rate`` items/second (0: as fast as possible) and within a duration."""

    def __init__(self, rate: float, duration: float | None) -> None:
        self.rate, self.duration = rate, duration
        self.started = time.monotonic()
        #: items between checks: about every 10 ms at a fixed rate (a steady stream,
        #: not bursts), every 1000 items when unpaced
        self.step = max(1, int(rate / 100)) if rate > 0 else 1000

    def expired(self) -> bool:
        return self.duration is not None and time.monotonic() - self.started >= self.duration

    def wait(self, done: int) -> None:
        if self.rate > 0:
            ahead = done / self.rate - (time.monotonic() - self.started)
            if ahead > 0:
                time.sleep(ahead)


def _take(generator: Generator, count: int | None,
          pacer: Pacer) -> Iterator[tuple[Transaction, str | None]]:
    step = pacer.step
    for done, item in enumerate(generator):
        if (count is not None and done >= count) or (done % step == 0 and pacer.expired()):
            return
        if done % step == 0:
            pacer.wait(done)
        yield item


class KafkaSink:
    """Transactions to ``topic``; each label to ``labels_topic`` once event time passes its
    ``reported_at`` (labels arrive late), the rest when the run ends; labels go out in
    report-time order (ties in the order they were given)."""

    def __init__(self, publisher: Publisher, topic: str, labels_topic: str) -> None:
        self.publisher, self.topic, self.labels_topic = publisher, topic, labels_topic
        #: (due ms, arrival number, label): a heap, as report delays differ per label
        self.waiting: list[tuple[int, int, Label]] = []
        self.arrivals = 0
        self.labels_published = 0

    def transaction(self, tx: Transaction) -> None:
        self.publisher.send(self.topic, tx.card_id.encode(), encode(tx))
        while self.waiting and self.waiting[0][0] <= tx.event_ms:
            self._publish(heapq.heappop(self.waiting)[2])

    def label(self, label: Label, due_ms: int) -> None:
        self.arrivals += 1
        heapq.heappush(self.waiting, (due_ms, self.arrivals, label))

    def close(self) -> None:
        while self.waiting:
            self._publish(heapq.heappop(self.waiting)[2])
        self.publisher.flush()

    def _publish(self, label: Label) -> None:
        self.publisher.send(self.labels_topic, label.transaction_id.encode(),
                            _LABEL_ENCODER.encode(label))
        self.labels_published += 1


class FileSink:
    """Canonical JSONL transactions, one per line."""

    labels_published = 0

    def __init__(self, path: Path) -> None:
        self.out = open(path, "wb")  # noqa: SIM115 - closed by close()

    def transaction(self, tx: Transaction) -> None:
        self.out.write(encode(tx) + b"\n")

    def label(self, label: Label, due_ms: int) -> None:
        """Labels of a file run live in the labels file only."""

    def close(self) -> None:
        self.out.close()


def generate(generator: Generator, sink: KafkaSink | FileSink, labels_path: Path, *,
             count: int | None, duration: float | None, rate: float,
             progress: Progress) -> RunStats:
    """Run the generator into ``sink``; every fraud label also goes to ``labels_path``."""
    stats, pacer = RunStats(), Pacer(rate, duration)
    delay = generator.config.label_delay_ms
    with open(labels_path, "wb") as labels_file:
        for tx, scenario in _take(generator, count, pacer):
            sink.transaction(tx)
            stats.transactions += 1
            if scenario is not None:
                label = label_for(tx, scenario, delay)
                stats.by_scenario[scenario] += 1
                labels_file.write(_LABEL_ENCODER.encode(label) + b"\n")
                sink.label(label, report_ms(tx, delay))
            if stats.transactions % 5000 == 0:
                progress(5000)
        sink.close()
    progress(stats.transactions % 5000)
    stats.labels = stats.fraud
    stats.labels_published = sink.labels_published
    stats.elapsed = time.monotonic() - pacer.started
    return stats


def read_records(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, JSON bytes) for each record of a JSONL or CSV file.

    CSV rows (header = field names, aliases allowed) become JSON objects whose
    values stay strings, except ``card_present`` (true/false); empty cells are
    left out.  Validation then treats both formats alike.
    """
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
            reader = csv.DictReader(handle)
            for row in reader:
                record: dict[str, object] = {k: v for k, v in row.items() if k and v not in
                                             ("", None)}
                if "card_present" in record:
                    flag = str(record["card_present"]).strip().lower()
                    record["card_present"] = {"true": True, "1": True, "false": False,
                                              "0": False}.get(flag, flag)
                yield reader.line_num, msgspec.json.encode(record)
        return
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield number, line


def replay_file(records: Iterable[tuple[int, bytes]], source: str, publisher: Publisher,
                topic: str, dlq_topic: str, config: DecoderConfig, *, validate: bool,
                rate: float, progress: Progress) -> RunStats:
    """Send a file's records to ``topic``; with ``validate``, bad ones go to ``dlq_topic``."""
    stats, pacer = RunStats(), Pacer(rate, None)
    for done, (number, raw) in enumerate(records, start=1):
        if not validate:
            publisher.send(topic, None, raw)
            stats.transactions += 1
        else:
            try:
                tx = decode(raw, config)
            except DecodeError as error:
                key, value = dlq_record(raw, None, error, source, 0, number)
                publisher.send(dlq_topic, key, value)
                stats.rejected += 1
                stats.reasons[error.reason] += 1
            else:
                publisher.send(topic, tx.card_id.encode(), encode(tx))
                stats.transactions += 1
        if done % 1000 == 0:
            progress(1000)
            pacer.wait(done)
    publisher.flush()
    stats.elapsed = time.monotonic() - pacer.started
    return stats
