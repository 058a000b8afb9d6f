"""Thin constructors for Kafka clients, shared by every consumer and producer.

Clients are configured for at-least-once delivery with idempotent effects:
producers are idempotent (``enable.idempotence``), consumers never auto-commit;
the caller commits after its effects are durable.

Every client (producer, consumer, admin) also gets the process's security
settings (``security.protocol``, ``sasl.*``, ``ssl.*``): the composition root
hands them over once, at start-up, with :func:`use_security`; until then
clients speak PLAINTEXT, which only the local stack's loopback broker accepts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

__all__ = [
    "KafkaError",
    "KafkaException",
    "TopicPartition",
    "broker_count",
    "consumer",
    "delete_topics",
    "describe_security",
    "ensure_topics",
    "group_assignment",
    "producer",
    "read_all",
    "read_at",
    "rewind_on_assign",
    "topic_names",
    "use_security",
]

log = logging.getLogger(__name__)

SECURITY_PREFIXES = ("security.protocol", "sasl.", "ssl.")
#: The security settings every client of this process gets (see use_security).
_security: dict[str, str] = {}


def use_security(config: Mapping[str, str]) -> None:
    """Give every Kafka client made from now on these librdkafka security settings.

    Called once per process, at start-up, before any client is made (the CLI does it
    from the settings); a later call replaces the earlier one.  Keys must be
    ``security.protocol``, ``sasl.*`` or ``ssl.*``.  The values may hold passwords,
    which are never logged nor shown (:func:`describe_security` masks them).
    """
    foreign = sorted(key for key in config if not key.startswith(SECURITY_PREFIXES))
    if foreign:
        raise ValueError(f"not a Kafka security setting: {', '.join(foreign)}")
    _security.clear()
    _security.update(config)
    log.debug("kafka clients: %s", describe_security())


def describe_security() -> str:
    """The current security settings for a log line, with every password masked."""
    if not _security:
        return "security.protocol=PLAINTEXT (default)"
    return ", ".join(f"{key}={'***' if 'password' in key else value}"
                     for key, value in sorted(_security.items()))


def producer(bootstrap: str, **overrides: Any) -> Producer:
    """An idempotent, batching producer (acks=all, lz4, 5 ms linger)."""
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        **_security,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
    }
    conf.update(overrides)
    return Producer(conf)


def consumer(bootstrap: str, group_id: str, **overrides: Any) -> Consumer:
    """A consumer that never commits on its own: offsets are committed by the caller."""
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        **_security,
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        # a consumer that died (SIGKILL, lost host) leaves the group after 10 s, not 45 s:
        # its replacement gets the partitions that much sooner
        "session.timeout.ms": 10_000,
    }
    conf.update(overrides)
    return Consumer(conf)


def consumer_error(error: KafkaError | None) -> None:
    """An error a consumer's poll handed over as a message: raise a fatal one; log the
    others (a broker restarting, ``_MAX_POLL_EXCEEDED`` after a long outage during
    which the loop did not poll: librdkafka rejoins the group on the next poll)."""
    if error is None:
        return
    if error.fatal():
        raise KafkaException(error)
    log.warning("kafka consumer: %s (the client recovers by itself)", error)


def rewind_on_assign(consumer: Consumer, partitions: list[TopicPartition]) -> None:
    """An ``on_assign`` callback that starts every assigned partition from its beginning."""
    for tp in partitions:
        tp.offset = OFFSET_BEGINNING
    consumer.assign(partitions)


def broker_count(bootstrap: str, timeout: float = 5.0) -> int:
    """Number of brokers in the cluster's metadata; raises KafkaException if unreachable."""
    metadata = _admin(bootstrap, log_level=0).list_topics(timeout=timeout)
    return len(metadata.brokers)


def ensure_topics(bootstrap: str, names: Iterable[str], partitions: int,
                  timeout: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    Idempotent: an existing topic is left as it is (its partition count included).
    """
    admin = _admin(bootstrap, log_level=3)
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [name for name in dict.fromkeys(names) if name not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in wanted],
        request_timeout=timeout)
    created = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created


def _admin(bootstrap: str, log_level: int) -> AdminClient:
    # A probe of a broker that is still starting (log_level 0) must not spam stderr,
    # nor should librdkafka's informational shutdown notices (level 6) reach the CLI.
    return AdminClient({"bootstrap.servers": bootstrap, **_security, "log_level": log_level})


def read_at(bootstrap: str, topic: str, partition: int, offset: int,
            timeout: float = 10.0) -> Message | None:
    """Read the one record at ``topic/partition/offset`` (no group membership, no commit)."""
    reader = consumer(bootstrap, group_id="fraudgraph-reader")
    try:
        reader.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = reader.poll(0.2)
            if msg is not None and not msg.error():
                return msg
        return None
    finally:
        reader.close()


def read_all(bootstrap: str, topic: str, timeout: float = 60.0) -> list[Message]:
    """Every record currently in ``topic`` (up to each partition's high watermark), in
    partition order. For tools and tests; consumers on the hot path use groups."""
    reader = consumer(bootstrap, group_id="fraudgraph-reader")
    try:
        metadata = reader.list_topics(topic, timeout=10).topics[topic]
        if metadata.error is not None:
            raise KafkaException(metadata.error)
        deadline = time.monotonic() + timeout
        ends = {}
        for partition in metadata.partitions:
            low, high = _watermarks(reader, TopicPartition(topic, partition), deadline)
            if high > low:
                ends[partition] = high
        reader.assign([TopicPartition(topic, p, 0) for p in ends])
        records: list[Message] = []
        while ends and time.monotonic() < deadline:
            for msg in reader.consume(10_000, 0.5):
                if msg.error():
                    raise KafkaException(msg.error())
                records.append(msg)
                if (msg.offset() or 0) + 1 >= ends.get(msg.partition() or 0, 0):
                    ends.pop(msg.partition() or 0, None)
        if ends:
            raise TimeoutError(f"{topic}: partitions {sorted(ends)} not read to the end")
        return sorted(records, key=lambda m: (m.partition(), m.offset()))
    finally:
        reader.close()


def _watermarks(reader: Consumer, tp: TopicPartition, deadline: float) -> tuple[int, int]:
    """A partition's low and high watermarks; while its leader settles (a broker just
    restarted: not leader, unknown partition) asked again until ``deadline``."""
    while True:
        try:
            low, high = reader.get_watermark_offsets(tp, timeout=10)
            return int(low), int(high)
        except KafkaException as exc:
            error = exc.args[0]
            settling = error.retriable() or error.code() in (
                KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError._UNKNOWN_PARTITION,
                KafkaError.LEADER_NOT_AVAILABLE)
            if error.fatal() or not settling or time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def delete_topics(bootstrap: str, names: Iterable[str], timeout: float = 30.0) -> list[str]:
    """Delete the named topics that exist; return the names deleted."""
    admin = _admin(bootstrap, log_level=3)
    existing = set(admin.list_topics(timeout=timeout).topics)
    doomed = sorted(set(names) & existing)
    if doomed:
        for future in admin.delete_topics(doomed, request_timeout=timeout).values():
            future.result()
    return doomed


def group_assignment(bootstrap: str, group: str, timeout: float = 10.0) -> list[int]:
    """Partitions per member of a consumer group that is stable (empty: not stable, or
    unknown): what a caller waits for before it measures a group just started."""
    admin = _admin(bootstrap, log_level=3)
    try:
        description = admin.describe_consumer_groups([group],
                                                     request_timeout=timeout)[group].result()
    except KafkaException as error:
        if error.args and isinstance(error.args[0], KafkaError) and error.args[0].retriable():
            return []  # e.g. the coordinator still loading on a broker just started
        raise
    if str(description.state).rsplit(".", 1)[-1] != "STABLE":
        return []
    return [len(member.assignment.topic_partitions) if member.assignment else 0
            for member in description.members]


def topic_names(bootstrap: str, timeout: float = 30.0) -> list[str]:
    return sorted(_admin(bootstrap, log_level=3).list_topics(timeout=timeout).topics)
