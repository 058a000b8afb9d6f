"""The publisher's delivery accounting, with a fake in place of librdkafka's producer:
a failed record is queued again (only it), a record Kafka refuses for good stops."""

from __future__ import annotations

from typing import Any

import pytest

from ingest import kafka
from ingest.publish import Publisher, PublishError, UndeliverableError


class FakeError:
    def __init__(self, retriable: bool) -> None:
        self._retriable = retriable

    def retriable(self) -> bool:
        return self._retriable

    def code(self) -> int:
        return -1 if self._retriable else kafka.KafkaError.MSG_SIZE_TOO_LARGE

    def __str__(self) -> str:
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
        self.fail: dict[bytes, bool] = {}  # value -> retriable

    def produce(self, topic: str, value: bytes, key: bytes | None) -> None:
        self.produced.append((topic, key, value))

    def poll(self, _timeout: float) -> int:
        return 0

    def flush(self, _timeout: float) -> int:
        for record in self.produced:
            retriable = self.fail.pop(record[2], None)
            if retriable is not None:
                self.publisher._delivered(FakeError(retriable), FakeMessage(record))
        return 0


@pytest.fixture
def publisher() -> tuple[Publisher, FakeProducer]:
    out = Publisher("127.0.0.1:1")  # librdkafka connects lazily: nothing is contacted
    fake = FakeProducer(out)
    out.producer = fake  # type: ignore[assignment]
    return out, fake


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
