"""No message stops the stream: the hostile inputs found against the daemon and the
projector, through TransactionSource with fakes in place of librdkafka's clients."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ingest import kafka
from ingest.dlq import DLQ_DECODER, MAX_PAYLOAD_BYTES, MAX_RECORD_BYTES, dlq_record
from ingest.source import TransactionSource
from ingest.transaction import DecodeError, encode
from tests.unit.test_publish import FakeError, FakeProducer
from tests.unit.test_transaction import CANONICAL, VALID, nested

LEGACY = (b'{"timestamp": 1767225700, "transaction_id": 74191676, "user_id": 42, '
          b'"card_id": 4242, "site_id": 7, "value": 99.9, "merchant_country": "US"}')
DEEP = nested(1201)  # 2.5 kB: the message that crash-looped both consumers
CONTROL = b"\x01" * 200_000  # 200 kB, each byte six in a JSON string
FUTURE = json.dumps({**VALID, "timestamp": "2099-01-01T00:00:00Z"}).encode()


class FakeMessage:
    def __init__(self, value: bytes, offset: int) -> None:
        self._value, self._offset = value, offset

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes:
        return b"card"

    def topic(self) -> str:
        return "transactions"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return 1, 1_767_225_700_000


class FakeConsumer:
    def __init__(self, values: list[bytes]) -> None:
        self.messages = [FakeMessage(v, i) for i, v in enumerate(values)]
        self.commits = 0

    def consume(self, _n: int, _timeout: float) -> list[FakeMessage]:
        messages, self.messages = self.messages, []
        return messages

    def commit(self, **_kwargs: Any) -> None:
        self.commits += 1

    def close(self) -> None:
        pass


def source_of(values: list[bytes]) -> tuple[TransactionSource, FakeConsumer, FakeProducer]:
    source = TransactionSource("127.0.0.1:1", "test", "transactions", "dlq")
    source.consumer.close()
    consumer = FakeConsumer(values)
    source.consumer = consumer  # type: ignore[assignment]
    producer = FakeProducer(source.dlq)
    source.dlq.producer = producer  # type: ignore[assignment]
    return source, consumer, producer


def test_hostile_messages_go_to_the_dlq_and_the_batch_goes_on() -> None:
    source, consumer, producer = source_of([encode(CANONICAL), DEEP, CONTROL, LEGACY, FUTURE])
    batch = source.poll_batch()
    assert [tx.transaction_id for tx in batch.transactions] == ["tx-1", "74191676"]
    assert batch.reasons == {"too_deep": 1, "too_large": 1, "timestamp_in_future": 1}
    records = {DLQ_DECODER.decode(v).source_offset: (v, DLQ_DECODER.decode(v))
               for _, _, v in producer.produced}
    assert all(len(value) <= MAX_RECORD_BYTES for value, _ in records.values())
    control = records[2][1]
    assert control.payload_truncated and control.payload == "\x01" * MAX_PAYLOAD_BYTES
    assert control.payload_bytes == 200_000
    assert control.payload_sha256 == hashlib.sha256(CONTROL).hexdigest()
    assert records[1][1].payload == DEEP.decode() and not records[1][1].payload_truncated
    source.commit()
    assert consumer.commits == 1 and source.dlq_dropped == 0


def test_a_dlq_record_kafka_refuses_is_dropped_not_raised() -> None:
    source, consumer, producer = source_of([b"not json", encode(CANONICAL)])
    batch = source.poll_batch()
    assert batch.reasons == {"invalid_json": 1}
    refused = producer.produced[0][2]
    producer.fail[refused] = FakeError(False, kafka.KafkaError.MSG_SIZE_TOO_LARGE)
    source.commit()  # the refused record is logged and counted; the offsets are committed
    assert source.dlq_dropped == 1 and consumer.commits == 1


def test_a_record_over_the_producers_limit_is_dropped_at_send() -> None:
    source, _, producer = source_of([])
    producer.limit = 100
    _, value = dlq_record(b"x" * 500, None, DecodeError("invalid_json", "x"), "t", 0, 0)
    source.dlq.send("dlq", b"t:0:0", value)
    source.commit()
    assert source.dlq_dropped == 1 and producer.produced == []
