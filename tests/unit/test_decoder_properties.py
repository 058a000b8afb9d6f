"""Property-based fuzzing of the decoders (hypothesis): whatever arrives, decode either
returns a valid transaction or raises DecodeError with a known reason, a decoded
transaction re-encodes to itself, and the DLQ record of anything rejected fits under
Kafka's message limit.  Nesting goes to 10,000 levels, payloads past the size limit."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ingest.dlq import DLQ_DECODER, MAX_RECORD_BYTES, dlq_record, original_bytes
from ingest.labels import decode_label
from ingest.transaction import (
    DEFAULT_CONFIG,
    MAX_DEPTH,
    MAX_EVENT_MS,
    MIN_EVENT_MS,
    DecodeError,
    DecoderConfig,
    decode,
    encode,
    iso_from_ms,
    parse_event_ms,
)
from tests.unit.test_transaction import VALID

#: Kafka's default limit on a produced record (librdkafka's message.max.bytes).
KAFKA_MAX_BYTES = 1_000_000
REASONS = {
    "too_large", "too_deep", "not_utf8", "invalid_json", "not_an_object", "missing_field",
    "wrong_type", "invalid_value", "conflicting_fields", "invalid_country", "invalid_currency",
    "invalid_amount", "amount_out_of_range", "invalid_timestamp", "timestamp_out_of_range",
    "timestamp_in_future", "invalid_id", "invalid_category", "invalid_label", "invalid_source",
    "invalid_scenario"}
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8)


def check(raw: bytes, config: DecoderConfig = DEFAULT_CONFIG) -> None:
    try:
        tx = decode(raw, config)
    except DecodeError as error:
        assert error.reason in REASONS and error.detail
        check_dlq(raw, error)
        return
    assert tx.amount_minor >= 0 and tx.transaction_id and tx.card_id
    assert decode(encode(tx), config) == tx


def check_dlq(raw: bytes, error: DecodeError) -> None:
    _, value = dlq_record(raw, raw[:2000] or None, error, "transactions", 0, 1)
    assert len(value) <= MAX_RECORD_BYTES < KAFKA_MAX_BYTES
    record = DLQ_DECODER.decode(value)
    assert record.payload_bytes == len(raw)
    assert original_bytes(record) in (raw, None)
    assert (original_bytes(record) is None) == record.payload_truncated


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_arbitrary_bytes(raw: bytes) -> None:
    check(raw)


@settings(max_examples=1000, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(VALID)), JSON_VALUES, max_size=len(VALID)))
def test_arbitrary_field_values(changes: dict[str, Any]) -> None:
    check(json.dumps({**VALID, **changes}, allow_nan=True).encode())


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(sorted(VALID)), st.text(max_size=300))
def test_hostile_text_in_any_field(field: str, text: str) -> None:
    raw = json.dumps({**VALID, field: text}).encode()
    check(raw)
    if not field.endswith("_id"):
        return
    try:
        tx = decode(raw)
    except DecodeError:
        return
    assert getattr(tx, field) == text  # injection-looking ids are data: stored verbatim


#: openers of arrays and objects, with what closes each and how many levels it opens
NESTS = {b"[": (b"]", 1), b'{"a":': (b"}", 1), b"[1,": (b"]", 1), b'{"k": [': (b"]}", 2),
         b"[[],": (b"]", 1)}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=1, max_value=10_000),
       st.lists(st.sampled_from(sorted(NESTS)), min_size=1, max_size=4), st.booleans(),
       st.sampled_from(["extra", "amount", "card_id", None]))
@example(10_000, [b"["], True, "extra")
@example(10_000, [b'{"a":'], False, "extra")
@example(MAX_DEPTH, [b"["], True, "extra")
def test_nesting_up_to_ten_thousand_deep(levels: int, pattern: list[bytes], closed: bool,
                                         field: str | None) -> None:
    """Deep nesting anywhere (an unknown field, a known one, the top level), closed or
    not: a DecodeError, and too_deep whenever well-formed and past the limit."""
    openers = [pattern[i % len(pattern)] for i in range(levels)]
    inner = b"".join(openers) + b"1"
    if closed:
        inner += b"".join(NESTS[o][0] for o in reversed(openers))
    raw = inner if field is None else json.dumps(VALID).encode()[:-1] + (
        f', "{field}": '.encode() + inner + b"}")
    big = DecoderConfig(max_bytes=1 << 20)
    check(raw, big)
    depth = sum(NESTS[o][1] for o in openers) + 1  # the transaction is depth 1
    if closed and field == "extra" and depth > MAX_DEPTH:
        try:
            decode(raw, big)
        except DecodeError as error:
            assert error.reason == "too_deep", error
        else:
            raise AssertionError(f"depth {depth} accepted")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.data_too_large])
@given(st.binary(min_size=1, max_size=64), st.integers(min_value=1, max_value=40_000))
@example(b"\x01" * 5, 40_000)  # the 200 kB of control characters that stopped the stream
@example(b"\x00\x1f", 32_768)  # exactly the decoder's limit
@example(b'"\\', 40_000)
@example(b"\xff\xfe" * 32, 40_000)  # 2.5 MB, not UTF-8
def test_payloads_up_to_and_past_the_size_limit(chunk: bytes, times: int) -> None:
    """Up to 2.5 MB of repeated bytes (control characters, invalid UTF-8, quotes...):
    rejected with a reason, and a DLQ record under Kafka's limit."""
    raw = chunk * times
    check(raw)
    check(json.dumps({**VALID, "extra": raw.decode("latin-1")}).encode())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=0x1F), st.integers(min_value=1, max_value=400_000))
def test_control_characters_escape_six_fold_and_still_fit(byte: int, length: int) -> None:
    raw = bytes([byte]) * length
    _, value = dlq_record(raw, None, DecodeError("too_large", "x"), "transactions", 0, 1)
    assert len(value) <= MAX_RECORD_BYTES


@settings(max_examples=1000, deadline=None)
@given(st.integers(min_value=MIN_EVENT_MS, max_value=MAX_EVENT_MS - 1))
def test_canonical_times_read_back_exactly(event_ms: int) -> None:
    assert parse_event_ms(iso_from_ms(event_ms)) == event_ms


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="0123456789-T:.Z+ W", min_size=24, max_size=24)
       | st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2110, 1, 1))
       .map(lambda d: d.replace(tzinfo=UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")))
def test_the_canonical_shortcut_agrees_with_the_iso_parser(value: str) -> None:
    try:
        parsed = datetime.fromisoformat(value)
        ms = round(parsed.timestamp() * 1000) if parsed.tzinfo else None
        expected: int | str = "invalid_timestamp" if ms is None else (
            ms if MIN_EVENT_MS <= ms < MAX_EVENT_MS else "timestamp_out_of_range")
    except (ValueError, OverflowError):
        expected = "invalid_timestamp"
    try:
        got: int | str = parse_event_ms(value)
    except DecodeError as error:
        got = error.reason
    assert got == expected or {got, expected} == {"invalid_timestamp",
                                                   "timestamp_out_of_range"}


LABEL = {"transaction_id": "tx-1", "label": "fraud", "source": "chargeback",
         "reported_at": "2026-01-03T00:00:00Z", "card_id": "c1", "user_id": "u1",
         "event_time": "2026-01-01T10:00:00Z", "scenario": "ato"}


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300) | st.dictionaries(st.sampled_from(sorted(LABEL)), JSON_VALUES)
       .map(lambda changes: json.dumps({**LABEL, **changes}, allow_nan=True).encode()))
def test_labels_only_ever_raise_decode_error(raw: bytes) -> None:
    try:
        label, event_ms = decode_label(raw)
    except DecodeError as error:
        assert error.reason in REASONS and error.detail
        check_dlq(raw, error)
        return
    assert label.event_ms == event_ms
    assert parse_event_ms(label.reported_at) == label.reported_ms
