"""`fraudgraph generate` and `fraudgraph produce`: get transactions into the system."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from fraudgraph.errors import ConfigError, FraudgraphError
from fraudgraph.settings import Settings
from fraudgraph.ui import (
    DURATION,
    FORMAT,
    Column,
    emit,
    env_epilog,
    out,
    progress_bar,
    settings_from,
    table,
)
from ingest import kafka, runs, scenarios
from ingest.generator import DEFAULT_START, Generator, GeneratorConfig
from ingest.publish import Publisher, PublishError
from ingest.runs import FileSink, KafkaSink, RunStats
from ingest.transaction import DecoderConfig

KAFKA_ENV = env_epilog("FRAUDGRAPH_KAFKA_BOOTSTRAP", "FRAUDGRAPH_TOPIC", "FRAUDGRAPH_DATA_DIR")


def parse_mix(text: str | None) -> dict[str, float]:
    """``card_testing=0.5,fraud_ring=0.5`` → shares; unnamed scenarios get 0."""
    if not text:
        return dict(scenarios.DEFAULT_MIX)
    mix = dict.fromkeys(scenarios.SCENARIOS, 0.0)
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in mix:
            raise ConfigError(f"--mix: {part.strip()!r} is not SCENARIO=SHARE with SCENARIO one "
                              f"of {', '.join(scenarios.SCENARIOS)}")
        try:
            mix[name] = float(value)
        except ValueError:
            raise ConfigError(f"--mix: share {value!r} of {name} is not a number") from None
    return mix


def decoder_config(settings: Settings) -> DecoderConfig:
    """The live decoder's limits (event times at most a day ahead of the clock; a
    backtest replaying history turns that off: ``max_future_ms=None``)."""
    try:
        return DecoderConfig(default_currency=settings.ingest.default_currency or None,
                             max_amount=settings.ingest.max_amount,
                             max_bytes=settings.ingest.max_message_bytes)
    except ValueError as exc:
        raise ConfigError(f"FRAUDGRAPH_DEFAULT_CURRENCY: {exc}") from None


@click.command(epilog=KAFKA_ENV)
@click.option("-n", "--count", type=click.IntRange(min=1),
              help="Transactions to generate [default: 100000 unless --duration].")
@click.option("--duration", type=DURATION, help="Stop after this wall-clock time (e.g. 5m).")
@click.option("--rate", type=click.FloatRange(min=0), default=0, show_default=True,
              help="Target transactions per second (0: as fast as possible).")
@click.option("--seed", type=int, default=42, show_default=True,
              help="Random seed: the same seed gives the same stream, byte for byte.")
@click.option("--fraud-rate", type=click.FloatRange(0, 0.5, max_open=True), default=0.01,
              show_default=True, help="Share of fraudulent transactions.")
@click.option("--mix", metavar="SCENARIO=SHARE,...",
              help="Shares of fraud per scenario: " + ", ".join(
                  f"{k}={v}" for k, v in scenarios.DEFAULT_MIX.items()) + " by default.")
@click.option("--users", type=click.IntRange(min=50), default=10_000, show_default=True)
@click.option("--sites", type=click.IntRange(min=20), default=1_000, show_default=True)
@click.option("--start", default=DEFAULT_START, show_default=True,
              help="Event time of the first transaction (ISO-8601 with zone).")
@click.option("--id-prefix", default="", metavar="TEXT",
              help="Put before every user, card and device id (1-8 letters or digits): a "
                   "second population beside the first in one graph.")
@click.option("--label-delay", type=DURATION, default="3d", show_default=True,
              help="How long after a fraud its label is reported (event time).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write JSONL here instead of producing to Kafka.")
@click.option("--labels", "labels_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Ground-truth labels file [default: beside --out, or "
                   "<data_dir>/labels/seed<SEED>.jsonl].")
@click.pass_context
def generate(ctx: click.Context, count: int | None, duration: int | None, rate: float,
             seed: int, fraud_rate: float, mix: str | None, users: int, sites: int, start: str,
             id_prefix: str, label_delay: int, out_path: Path | None,
             labels_path: Path | None) -> None:
    """Generate realistic card traffic with labelled fraud scenarios.

    Scenarios: card_testing, account_takeover, fraud_ring, device_farm,
    compromised_site, velocity_burst. Transactions go to the transactions
    topic (keyed by card_id) or to a JSONL file; every fraud's ground truth
    goes to a labels file and, after --label-delay of event time, to the
    fraud-labels topic.
    """
    settings = settings_from(ctx)
    if count is None and duration is None:
        count = 100_000
    try:
        config = GeneratorConfig(seed=seed, users=users, sites=sites, start=start,
                                 fraud_rate=fraud_rate, mix=parse_mix(mix),
                                 label_delay_ms=label_delay, id_prefix=id_prefix)
        config.start_ms  # noqa: B018 - validates --start
    except ValueError as exc:
        raise ConfigError(f"generate: {exc}") from None
    if labels_path is None:
        labels_path = (out_path.with_suffix(".labels.jsonl") if out_path is not None else
                       settings.data_dir / "labels" / f"seed{seed}.jsonl")
    labels_path.parent.mkdir(parents=True, exist_ok=True)
    generator = Generator(config)
    if out_path is None:  # idempotent: the topics may be renamed by FRAUDGRAPH_TOPIC_*
        kafka.ensure_topics(settings.kafka.bootstrap, settings.topics.all(),
                            settings.kafka.partitions)
    target = str(out_path) if out_path else f"Kafka topic {settings.topics.transactions}"
    with progress_bar(f"generating → {target}", count) as advance:
        if out_path is not None:
            stats = runs.generate(generator, FileSink(out_path), labels_path, count=count,
                             duration=duration / 1000 if duration else None, rate=0,
                             progress=advance)
        else:
            sink = KafkaSink(Publisher(settings.kafka.bootstrap), settings.topics.transactions,
                             settings.topics.labels)
            stats = _publishing(lambda: runs.generate(
                generator, sink, labels_path, count=count,
                duration=duration / 1000 if duration else None, rate=rate, progress=advance))
    out.print(summary(stats, labels_path))


@click.command(epilog=env_epilog("FRAUDGRAPH_KAFKA_BOOTSTRAP", "FRAUDGRAPH_TOPIC",
                                "FRAUDGRAPH_DEFAULT_CURRENCY", "FRAUDGRAPH_MAX_"))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rate", type=click.FloatRange(min=0), default=0, show_default=True,
              help="Target records per second (0: as fast as possible).")
@click.option("--no-validate", is_flag=True,
              help="Send records as they are; the consumers' validation sends bad ones to the "
                   "DLQ.")
@click.pass_context
def produce(ctx: click.Context, file: Path, rate: float, no_validate: bool) -> None:
    """Replay a JSONL or CSV file of transactions into Kafka.

    Each record is validated like the stream validates it: good ones go to
    the transactions topic in canonical form keyed by card_id, bad ones to the
    dead-letter topic with the reason and the file's line number. CSV files
    need a header row of field names (aliases such as merchant_id allowed).
    """
    settings = settings_from(ctx)
    publisher = Publisher(settings.kafka.bootstrap)
    with progress_bar(f"producing {file.name}", None) as advance:
        stats = _publishing(lambda: runs.replay_file(
            runs.read_records(file), f"file:{file.name}", publisher, settings.topics.transactions,
            settings.topics.dlq, decoder_config(settings), validate=not no_validate, rate=rate,
            progress=advance))
    rows = [["sent to " + settings.topics.transactions, f"{stats.transactions:,}"],
            ["rejected to " + settings.topics.dlq, f"{stats.rejected:,}"]]
    rows += [[f"  {reason}", f"{n:,}"] for reason, n in stats.reasons.most_common()]
    rows.append(["rate", f"{stats.rate:,.0f}/s"])
    out.print(table(f"produced {file}", ["", "records"], rows))


def _publishing(job: Callable[[], RunStats]) -> RunStats:
    try:
        return job()
    except PublishError as exc:
        raise FraudgraphError(f"Kafka did not take every record ({exc}); is the stack up? "
                              "`fraudgraph stack status`") from None


def summary(stats: RunStats, labels_path: Path) -> object:
    rows = [["transactions", f"{stats.transactions:,}", ""],
            ["fraudulent", f"{stats.fraud:,}",
             f"{stats.fraud / max(stats.transactions, 1):.2%} of all"]]
    for name in scenarios.SCENARIOS:
        if stats.by_scenario[name]:
            rows.append([f"  {name}", f"{stats.by_scenario[name]:,}",
                         f"{stats.by_scenario[name] / max(stats.fraud, 1):.1%} of fraud"])
    rows.append(["labels written", f"{stats.labels:,}", str(labels_path)])
    if stats.labels_published:
        rows.append(["labels published", f"{stats.labels_published:,}", "fraud-labels topic"])
    rows.append(["elapsed", f"{stats.elapsed:.1f} s", f"{stats.rate:,.0f} transactions/s"])
    return table("generated", ["", "count", ""], rows)


DECODE_COLUMNS = [
    Column("form"),
    Column("messages", lambda n: f"{n:,}", "right"),
    Column("us_per_message", lambda us: f"{us:.2f} µs", "right", "per message"),
    Column("per_second", lambda rate: f"{rate:,.0f}/s", "right", "throughput"),
]


@click.command("bench-decode", epilog=env_epilog("FRAUDGRAPH_DEFAULT_CURRENCY",
                                                 "FRAUDGRAPH_MAX_"))
@click.option("-n", "--count", type=click.IntRange(min=1000), default=200_000, show_default=True,
              help="Messages to decode per case.")
@click.option("--seed", type=int, default=42, show_default=True)
@FORMAT
@click.pass_context
def bench_decode(ctx: click.Context, count: int, seed: int, fmt: str) -> None:
    """Measure decode + validation cost per message (the hot path's first step).

    Decodes COUNT generated transactions in each accepted form and a mix of
    rejected ones, and prints microseconds per message.
    """
    import itertools
    import json
    import time

    from ingest.transaction import DecodeError, decode, encode

    config = decoder_config(settings_from(ctx))
    txs = [tx for tx, _ in itertools.islice(Generator(GeneratorConfig(seed=seed)), count)]
    canonical = [encode(tx) for tx in txs]
    renames = {"amount": "value", "site_id": "merchant_id", "user_id": "customer_id",
               "country": "merchant_country"}
    legacy = []
    for data in canonical:
        record = {renames.get(k, k): v for k, v in json.loads(data).items()}
        record["timestamp"] = 1767225600  # epoch seconds form
        legacy.append(json.dumps(record).encode())
    hostile = [data.replace(b'"country":"', b'"country":"X') for data in canonical]
    rows = []
    for name, messages in (("canonical JSON", canonical), ("legacy aliases, epoch", legacy),
                           ("rejected (bad country)", hostile)):
        started = time.perf_counter()
        for data in messages:
            try:  # noqa: SIM105 - cheaper than contextlib.suppress inside the timed loop
                decode(data, config)
            except DecodeError:
                pass
        elapsed = time.perf_counter() - started
        rows.append([name, len(messages), elapsed / len(messages) * 1e6,
                     len(messages) / elapsed])
    emit(rows, DECODE_COLUMNS, fmt, "decode + validate, one core")
