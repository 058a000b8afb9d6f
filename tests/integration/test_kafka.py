"""Kafka: topics, produce and consume for real on the local broker."""

from __future__ import annotations

import time

from fraudgraph.settings import Settings
from ingest import kafka


def consume_all(bootstrap: str, topic: str, group: str, expected: int,
                timeout: float = 30.0) -> list[tuple[bytes, bytes]]:
    consumer = kafka.consumer(bootstrap, group)
    consumer.subscribe([topic])
    got: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            got.append((msg.key(), msg.value()))
        # Anything beyond `expected` would be a duplicate: once the group has its
        # partitions, give it a moment to show up.
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(0.2)
        assert consumer.assignment(), "the consumer never joined its group"
        extra_deadline = time.monotonic() + 1.5
        while time.monotonic() < extra_deadline:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                got.append((msg.key(), msg.value()))
        if got:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return got


def test_spec_topics_exist_with_configured_partitions(stack: Settings) -> None:
    from confluent_kafka.admin import AdminClient

    metadata = AdminClient({"bootstrap.servers": stack.kafka.bootstrap}).list_topics(timeout=10)
    for name in stack.topics.all():
        assert name in metadata.topics, name
        assert len(metadata.topics[name].partitions) == stack.kafka.partitions


def test_produce_then_consume_round_trip(stack: Settings, unique: str) -> None:
    topic = f"test-roundtrip-{unique}"
    assert kafka.ensure_topics(stack.kafka.bootstrap, [topic], partitions=3) == [topic]
    assert kafka.ensure_topics(stack.kafka.bootstrap, [topic], partitions=3) == []  # idempotent

    producer = kafka.producer(stack.kafka.bootstrap)
    sent = {(f"card-{i}".encode(), f'{{"n": {i}}}'.encode()) for i in range(25)}
    for key, value in sent:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(10) == 0

    group = f"test-group-{unique}"
    assert set(consume_all(stack.kafka.bootstrap, topic, group, expected=25)) == sent
    # Offsets were committed: the same group sees nothing new.
    assert consume_all(stack.kafka.bootstrap, topic, group, expected=0, timeout=20) == []
