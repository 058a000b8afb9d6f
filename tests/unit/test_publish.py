"""The publisher's delivery accounting, with a fake in place of librdkafka's producer:
a failed record is queued again (only it), a record Kafka refuses for good stops —
except on the dead-letter path, where it is logged, counted and dropped."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from ingest import kafka
from ingest.publish import DeadLetterPublisher, Publisher, PublishError, UndeliverableError

NOT_AUTHORISED = kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED


class FakeError:
    def __init__(self, retriable: bool, code: int | None = None) -> None:
        self._retriable = retriable
        self._code = code

    def retriable(self) -> bool:
        return self._retriable

    def code(self) -> int:
        if self._code is not None:
            return self._code
        return -1 if self._retriable else kafka.KafkaError.MSG_SIZE_TOO_LARGE

    def __str__(self) -> str:
        if self._code is not None:
            return f"error {self._code}"
        return "broker went away" if self._retriable else "message too large"


class FakeMessage:
    def __init__(self, record: tuple[str, bytes | None, bytes]) -> None:
        self.record = record

    def topic(self) -> str:
        return self.record[0]

    def key(self) -> bytes | None:
        return self.record[1]

    def value(self) -> bytes:
        return self.record[2]


class FakeProducer:
    """Records what is produced; at flush, reports the records in ``fail`` as failed."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.produced: list[tuple[str, bytes | None, bytes]] = []
        self.fail: dict[bytes, bool | FakeError] = {}  # value -> retriable, or the error
        self.limit = 1_000_000  # librdkafka's message.max.bytes: refused at produce

    def produce(self, topic: str, value: bytes, key: bytes | None) -> None:
        if len(value) > self.limit:
            raise kafka.KafkaException(FakeError(False))
        self.produced.append((topic, key, value))

    def poll(self, _timeout: float) -> int:
        return 0

    def flush(self, _timeout: float) -> int:
        for record in self.produced:
            failure = self.fail.pop(record[2], None)
            if failure is not None:
                error = failure if isinstance(failure, FakeError) else FakeError(failure)
                self.publisher._delivered(error, FakeMessage(record))
        return 0


def faked(out: Publisher) -> tuple[Publisher, FakeProducer]:
    fake = FakeProducer(out)
    out.producer = fake  # type: ignore[assignment]
    return out, fake


@pytest.fixture
def publisher() -> tuple[Publisher, FakeProducer]:
    return faked(Publisher("127.0.0.1:1"))  # librdkafka connects lazily: nothing is contacted


@pytest.fixture
def dead_letters() -> tuple[Publisher, FakeProducer]:
    return faked(DeadLetterPublisher("127.0.0.1:1"))


def test_only_the_failed_record_is_sent_again(publisher: tuple[Publisher, Any]) -> None:
    out, fake = publisher
    for value in (b"a", b"b", b"c"):
        out.send("t", value, value)
    fake.fail[b"b"] = True
    with pytest.raises(PublishError, match="1 record"):
        out.flush()
    assert [v for _, _, v in fake.produced] == [b"a", b"b", b"c", b"b"]  # b once more
    out.flush()  # the resent b is delivered: no error, nothing else resent
    assert len(fake.produced) == 4 and out.failed == 0


def test_a_record_kafka_refuses_for_good_stops_the_caller(
        publisher: tuple[Publisher, Any]) -> None:
    out, fake = publisher
    out.send("t", b"k", b"huge")
    fake.fail[b"huge"] = False
    with pytest.raises(UndeliverableError, match="message too large"):
        out.flush()


def test_a_record_too_large_to_produce_stops_the_caller(publisher: tuple[Publisher, Any]) -> None:
    out, _ = publisher
    with pytest.raises(UndeliverableError, match="message too large"):
        out.send("decisions", b"k", b"x" * 1_000_001)


def test_the_dead_letter_path_drops_what_kafka_refuses_for_good(
        dead_letters: tuple[Publisher, Any], caplog: pytest.LogCaptureFixture) -> None:
    out, fake = dead_letters
    out.send("dlq", b"t:0:1", b"x" * 1_000_001)  # refused by the producer at once
    out.send("dlq", b"t:0:2", b"refused by the broker")
    out.send("dlq", b"t:0:3", b"fine")
    fake.fail[b"refused by the broker"] = False
    with caplog.at_level(logging.ERROR, logger="ingest.publish"):
        out.flush()  # no error: both refused records are dropped
    assert out.dropped == 2 and out.sent == 2 and out.failed == 0
    assert [v for _, _, v in fake.produced] == [b"refused by the broker", b"fine"]
    assert [r.getMessage().split(",")[0] for r in caplog.records] == [
        "dropped a record Kafka refuses for good: topic dlq"] * 2
    assert "t:0:1" in caplog.records[0].getMessage()


def test_the_dead_letter_path_still_retries_and_still_stops_for_the_topic(
        dead_letters: tuple[Publisher, Any]) -> None:
    out, fake = dead_letters
    out.send("dlq", b"k", b"a")
    fake.fail[b"a"] = True  # retriable: queued again, as for any publisher
    with pytest.raises(PublishError):
        out.flush()
    out.flush()
    assert out.dropped == 0 and [v for _, _, v in fake.produced] == [b"a", b"a"]
    out.send("dlq", b"k", b"b")
    fake.fail[b"b"] = FakeError(False, NOT_AUTHORISED)  # the topic's fault, not the record's
    with pytest.raises(UndeliverableError, match=str(NOT_AUTHORISED)):
        out.flush()
    assert out.dropped == 0
