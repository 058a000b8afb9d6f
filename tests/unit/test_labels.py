"""Fraud labels are validated like transactions (ingest.labels), and a label that fails
goes to the dead-letter topic with its reason (ingest.label_source)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from ingest.dlq import DLQ_DECODER, original_bytes
from ingest.label_source import LabelSource
from ingest.labels import MAX_LABEL_BYTES, MAX_SOURCE_LENGTH, LabelMessage, decode_label
from ingest.transaction import DecodeError, parse_event_ms

LABEL: dict[str, Any] = {
    "transaction_id": "tx-1", "label": "fraud", "source": "chargeback",
    "reported_at": "2026-01-03T01:00:00+01:00", "card_id": "card-1", "user_id": "user-1",
    "event_time": "2026-01-01T10:00:00Z", "scenario": "account_takeover"}


def label(**changes: Any) -> bytes:
    record = {**LABEL, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...}).encode()


def test_a_label_carries_its_times_parsed_and_canonical() -> None:
    message, event_ms = decode_label(label())
    assert message == LabelMessage(
        transaction_id="tx-1", label="fraud", source="chargeback",
        reported_at="2026-01-03T00:00:00.000Z", reported_ms=1_767_398_400_000,
        card_id="card-1", user_id="user-1", event_time="2026-01-01T10:00:00.000Z",
        event_ms=1_767_261_600_000, scenario="account_takeover")
    assert event_ms == message.event_ms
    assert parse_event_ms(message.reported_at) == message.reported_ms


def test_the_spec_minimum_and_legacy_forms() -> None:
    message, event_ms = decode_label(label(card_id=..., user_id=..., event_time=...,
                                           scenario=..., reported_at=1767398400))
    assert (message.reported_at, message.card_id, event_ms) == (
        "2026-01-03T00:00:00.000Z", None, None)
    legacy, _ = decode_label(label(transaction_id=74191676, card_id=4242, user_id=42))
    assert (legacy.transaction_id, legacy.card_id, legacy.user_id) == ("74191676", "4242", "42")
    extra, _ = decode_label(label(note={"deep": [1, [2]]}))
    assert extra.transaction_id == "tx-1"
    # where it happened, for a transaction whose detail the graph does not hold
    placed, _ = decode_label(label(site_id="site-9", device_id=77))
    assert (placed.site_id, placed.device_id) == ("site-9", "77")


HOSTILE: list[tuple[str, bytes, str]] = [
    ("not json", b"fraud!", "invalid_json"),
    ("not utf-8", b'{"label": "\xff"}', "not_utf8"),
    ("an array", b"[]", "not_an_object"),
    ("missing reported_at", label(reported_at=...), "missing_field"),
    ("missing source", label(source=...), "missing_field"),
    ("label not a string", label(label=1), "wrong_type"),
    ("float transaction_id", label(transaction_id=1.5), "wrong_type"),
    ("bool card_id", label(card_id=True), "wrong_type"),
    ("unknown label", label(label="maybe"), "invalid_label"),
    ("empty transaction_id", label(transaction_id=""), "invalid_id"),
    ("transaction_id of 129", label(transaction_id="t" * 129), "invalid_id"),
    ("NUL in transaction_id", label(transaction_id="tx\u00001"), "invalid_id"),
    ("newline in card_id", label(card_id="card\n-1"), "invalid_id"),
    ("blanks round user_id", label(user_id=" user-1"), "invalid_id"),
    ("NUL in site_id", label(site_id="site\u00001"), "invalid_id"),
    ("empty device_id", label(device_id=""), "invalid_id"),
    ("NUL in source", label(source="charge\u0000back"), "invalid_source"),
    ("escape in source", label(source="\u001b[31mred"), "invalid_source"),
    ("empty source", label(source=""), "invalid_source"),
    ("source too long", label(source="s" * (MAX_SOURCE_LENGTH + 1)), "invalid_source"),
    ("control char in scenario", label(scenario="a\tb"), "invalid_scenario"),
    ("garbage reported_at", label(reported_at="last tuesday"), "invalid_timestamp"),
    ("naive reported_at", label(reported_at="2026-01-03T00:00:00"), "invalid_timestamp"),
    ("reported_at in 1970", label(reported_at=5), "timestamp_out_of_range"),
    ("reported_at in 2099", label(reported_at="2099-01-01T00:00:00Z"), "timestamp_in_future"),
    ("bad event_time", label(event_time="soon"), "invalid_timestamp"),
    ("too large", label(note="x" * MAX_LABEL_BYTES), "too_large"),
    ("1,200 deep", label()[:-1] + b', "x": ' + b"[" * 1200 + b"]" * 1200 + b"}", "too_deep"),
    ("nested past the limit", label()[:-1] + b', "x": ' + b"[" * 64 + b"]" * 64 + b"}",
     "too_deep"),
]


@pytest.mark.parametrize(("name", "raw", "reason"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_labels_are_rejected_with_their_reason(name: str, raw: bytes,
                                                       reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_label(raw)
    assert info.value.reason == reason, info.value.detail
    assert info.value.detail


def test_reports_from_the_future() -> None:
    now = time.time()
    soon, later = label(reported_at=int(now + 23 * 3600)), label(reported_at=int(now + 25 * 3600))
    assert decode_label(soon)[0].reported_ms == int(now + 23 * 3600) * 1000
    with pytest.raises(DecodeError, match="timestamp_in_future"):
        decode_label(later)
    with pytest.raises(DecodeError, match="timestamp_in_future"):
        decode_label(soon, max_future_ms=3_600_000)
    backtest, _ = decode_label(label(reported_at="2099-01-01T00:00:00Z"), max_future_ms=None)
    assert backtest.reported_at == "2099-01-01T00:00:00.000Z"


class FakeMessage:
    def __init__(self, value: bytes, offset: int) -> None:
        self._value, self._offset = value, offset

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes:
        return b"tx-1"

    def topic(self) -> str:
        return "fraud-labels"

    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return self._offset


class FakeProducer:
    def __init__(self) -> None:
        self.produced: list[tuple[str, bytes | None, bytes]] = []

    def produce(self, topic: str, value: bytes, key: bytes | None) -> None:
        self.produced.append((topic, key, value))

    def poll(self, _timeout: float) -> int:
        return 0


@pytest.mark.parametrize("max_future_ms", [86_400_000, None])
def test_the_label_source_sends_bad_labels_to_the_dlq(max_future_ms: int | None) -> None:
    rejected: list[str] = []
    source = LabelSource("127.0.0.1:1", "test-labels", "fraud-labels", "dlq",
                         from_beginning=False, rejected=rejected.append,
                         max_future_ms=max_future_ms)
    fake = FakeProducer()
    source.dlq.producer = fake  # type: ignore[assignment]
    try:
        future = label(reported_at="2099-01-01T00:00:00Z")
        for offset, raw in enumerate([label(), future, label(source="a\u0000b")]):
            source._take(FakeMessage(raw, offset))
    finally:
        source.close()
    waiting = source.pending[("fraud-labels", 2)]
    good = [p for p in waiting if p.label is not None]
    assert good[0].reported_ms == good[0].label.reported_ms == 1_767_398_400_000  # type: ignore[union-attr]
    assert good[0].ready_ms == 1_767_261_600_000  # the earlier: its transaction's time
    expected = ["invalid_source"] if max_future_ms is None else ["timestamp_in_future",
                                                                  "invalid_source"]
    assert rejected == expected
    records = [DLQ_DECODER.decode(value) for _, _, value in fake.produced]
    assert [r.reason for r in records] == expected
    assert all(r.source_topic == "fraud-labels" and r.source_partition == 2 for r in records)
    assert original_bytes(records[-1]) == label(source="a\u0000b")
    assert len(waiting) == 3  # the rejected ones are committed with their neighbours
