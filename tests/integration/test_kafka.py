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


def test_end_offsets_cover_every_partition_and_join_no_group(stack: Settings,
                                                             unique: str) -> None:
    """The daemon's look at how far the topic goes (``TransactionSource.end_offsets``):
    every partition, the assigned and the empty alike, asked through a client of its
    own that never joins a consumer group."""
    from ingest.source import TransactionSource

    topic, group = f"test-ends-{unique}", f"test-ends-{unique}"
    kafka.ensure_topics(stack.kafka.bootstrap, [topic, f"{topic}-dlq"], partitions=3)
    producer = kafka.producer(stack.kafka.bootstrap)
    for partition, count in ((0, 4), (2, 7)):
        for _ in range(count):
            producer.produce(topic, key=b"k", value=b"{}", partition=partition)
    assert producer.flush(10) == 0
    source = TransactionSource(stack.kafka.bootstrap, group, topic, f"{topic}-dlq",
                               batch_timeout=0.5, dead_letters=False)
    try:
        deadline = time.monotonic() + 30
        consumed = 0
        while consumed < 11 and time.monotonic() < deadline:
            consumed += source.poll_batch().consumed
        assert consumed == 11  # the group has its partitions and is long-polling now
        assert source.end_offsets() == {0: 4, 1: 0, 2: 7}
        assert source._offsets is not None and source._offsets is not source.consumer
        assert kafka.group_assignment(stack.kafka.bootstrap, group) == [3]
        assert kafka.group_assignment(stack.kafka.bootstrap, f"{group}-end-offsets") == []
    finally:
        source.close()
        kafka.delete_topics(stack.kafka.bootstrap, [topic, f"{topic}-dlq"])
