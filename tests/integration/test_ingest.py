"""Ingest against the real Kafka: generator → topic → consumer, DLQ routing, produce command."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from fraudgraph.settings import Settings
from ingest import kafka
from ingest.dlq import DLQ_DECODER, original_bytes
from ingest.generator import Generator, GeneratorConfig
from ingest.publish import Publisher
from ingest.runs import KafkaSink, generate
from ingest.source import TransactionSource
from ingest.transaction import Transaction, decode, encode
from tests.integration.cli_helpers import run_cli
from tests.unit.test_transaction import HOSTILE


def topics(stack: Settings, unique: str, *names: str) -> list[str]:
    created = [f"test-{name}-{unique}" for name in names]
    kafka.ensure_topics(stack.kafka.bootstrap, created, partitions=3)
    return created


def drain(source: TransactionSource, expected: int, rounds: int = 200) -> list[Transaction]:
    got: list[Transaction] = []
    consumed = 0
    for _ in range(rounds):
        batch = source.poll_batch()
        got += batch.transactions
        consumed += batch.consumed
        source.commit()
        if consumed >= expected:
            # One more poll: anything more would be a duplicate.
            extra = source.poll_batch()
            got += extra.transactions
            source.commit()
            break
    return got


def test_generated_stream_arrives_exactly_once(stack: Settings, unique: str,
                                               tmp_path: Path) -> None:
    tx_topic, labels_topic, dlq_topic = topics(stack, unique, "tx", "labels", "dlq")
    generator = Generator(GeneratorConfig(seed=21, users=2000, sites=300, fraud_rate=0.03))
    sink = KafkaSink(Publisher(stack.kafka.bootstrap), tx_topic, labels_topic)
    stats = generate(generator, sink, tmp_path / "labels.jsonl", count=20_000, duration=None,
                     rate=0, progress=lambda _n: None)
    assert stats.transactions == 20_000 and stats.labels_published == stats.fraud > 0

    regenerated = Generator(GeneratorConfig(seed=21, users=2000, sites=300, fraud_rate=0.03))
    sent = {tx.transaction_id: tx for tx, _ in itertools.islice(regenerated, 20_000)}

    source = TransactionSource(stack.kafka.bootstrap, f"test-{unique}", tx_topic, dlq_topic)
    try:
        received = drain(source, 20_000)
    finally:
        source.close()
    assert len(received) == 20_000
    assert {tx.transaction_id: tx for tx in received} == sent
    # Keyed by card: all of a card's transactions are on one partition.
    partitions: dict[bytes, set[int]] = {}
    for msg in kafka.read_all(stack.kafka.bootstrap, tx_topic):
        partitions.setdefault(msg.key(), set()).add(msg.partition())
    assert all(len(p) == 1 for p in partitions.values())

    labels = [json.loads(m.value()) for m in kafka.read_all(stack.kafka.bootstrap, labels_topic)]
    assert len(labels) == stats.fraud
    assert {label["transaction_id"] for label in labels} <= set(sent)
    assert kafka.read_all(stack.kafka.bootstrap, dlq_topic) == []


def test_malformed_messages_go_to_the_dlq_and_good_ones_through(stack: Settings,
                                                                 unique: str) -> None:
    tx_topic, dlq_topic = topics(stack, unique, "mixed", "mixed-dlq")
    good = [tx for tx, _ in itertools.islice(
        Generator(GeneratorConfig(seed=9, users=500, sites=50)), 2000)]
    bad = [(name, data, reason) for name, data, reason in HOSTILE] * 5
    publisher = Publisher(stack.kafka.bootstrap)
    for i, tx in enumerate(good):
        publisher.send(tx_topic, tx.card_id.encode(), encode(tx))
        if i % 10 == 0 and bad:
            publisher.send(tx_topic, b"hostile", bad[(i // 10) % len(bad)][1])
    publisher.flush()
    sent_bad = [bad[(i // 10) % len(bad)] for i in range(0, len(good), 10)]

    source = TransactionSource(stack.kafka.bootstrap, f"test-{unique}", tx_topic, dlq_topic,
                               batch_size=700)
    try:
        received = drain(source, len(good) + len(sent_bad))
    finally:
        source.close()
    assert sorted(tx.transaction_id for tx in received) == sorted(t.transaction_id for t in good)

    dead = [DLQ_DECODER.decode(m.value()) for m in kafka.read_all(stack.kafka.bootstrap,
                                                                  dlq_topic)]
    assert len(dead) == len(sent_bad)
    assert sorted(r.reason for r in dead) == sorted(reason for _, _, reason in sent_bad)
    assert sorted(original_bytes(r) or b"" for r in dead) == sorted(d for _, d, _ in sent_bad)
    assert all(r.source_topic == tx_topic and r.source_key == "hostile" and r.error
               for r in dead)
    # Each DLQ record points at the offset of the message it rejected.
    by_offset = {(m.partition(), m.offset()): m.value()
                 for m in kafka.read_all(stack.kafka.bootstrap, tx_topic)}
    assert all(by_offset[(r.source_partition, r.source_offset)] == original_bytes(r)
               for r in dead)


def test_produce_command_validates_files(stack: Settings, unique: str, tmp_path: Path) -> None:
    tx_topic, dlq_topic = topics(stack, unique, "replay", "replay-dlq")
    env = {"FRAUDGRAPH_TOPIC_TRANSACTIONS": tx_topic, "FRAUDGRAPH_TOPIC_DLQ": dlq_topic}
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text(
        '{"transaction_id": "r1", "timestamp": 1767225600, "value": 10, "customer_id": "u1",'
        ' "card_id": "c1", "merchant_id": "s1", "merchant_country": "US"}\n'
        '{"transaction_id": "r2", "timestamp": "2026-01-01T00:00:00Z", "amount": -3,'
        ' "user_id": "u1", "card_id": "c1", "site_id": "s1", "country": "US"}\n'
        "\n"
        "not json\n")
    csv_file = tmp_path / "mine.csv"
    csv_file.write_text(
        "transaction_id,timestamp,amount,currency,card_id,user_id,site_id,country,card_present\n"
        "r3,2026-01-01T10:00:00+01:00,19.99,EUR,c2,u2,s2,FR,true\n"
        "r4,2026-01-01T10:00:00Z,5.00,EUR,c2,u2,s2,ZZ,false\n")
    for path in (jsonl, csv_file):
        result = run_cli("produce", str(path), env=env)
        assert result.returncode == 0, result.stderr

    good = {m.key(): decode(m.value()) for m in kafka.read_all(stack.kafka.bootstrap, tx_topic)}
    assert sorted(tx.transaction_id for tx in good.values()) == ["r1", "r3"]
    r3 = next(tx for tx in good.values() if tx.transaction_id == "r3")
    assert (r3.amount_minor, r3.currency, r3.card_present, r3.timestamp) == (
        1999, "EUR", True, "2026-01-01T09:00:00.000Z")
    assert set(good) == {b"c1", b"c2"}  # keyed by card_id

    dead = [DLQ_DECODER.decode(m.value()) for m in kafka.read_all(stack.kafka.bootstrap,
                                                                  dlq_topic)]
    assert sorted((r.source_topic, r.source_offset, r.reason) for r in dead) == [
        ("file:mine.csv", 3, "invalid_country"),
        ("file:mine.jsonl", 2, "invalid_amount"),
        ("file:mine.jsonl", 4, "invalid_json"),
    ]


def test_generate_command_to_kafka(stack: Settings, unique: str, tmp_path: Path) -> None:
    tx_topic, labels_topic = topics(stack, unique, "gen", "gen-labels")
    labels = tmp_path / "labels.jsonl"
    result = run_cli("generate", "-n", "5000", "--seed", "3", "--users", "500", "--sites", "60",
                     "--fraud-rate", "0.05", "--labels", str(labels),
                     env={"FRAUDGRAPH_TOPIC_TRANSACTIONS": tx_topic,
                          "FRAUDGRAPH_TOPIC_LABELS": labels_topic})
    assert result.returncode == 0, result.stderr
    assert "5,000" in result.stdout and "labels published" in result.stdout
    assert len(kafka.read_all(stack.kafka.bootstrap, tx_topic)) == 5000
    written = labels.read_text().splitlines()
    published = kafka.read_all(stack.kafka.bootstrap, labels_topic)
    assert len(published) == len(written) > 100
    assert sorted(m.value() for m in published) == sorted(line.encode() for line in written)
