"""Decoding and validation of the transaction contract (SPEC §3.1)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from datetime import datetime
from typing import Any

import pytest

from ingest.dlq import DLQ_DECODER, dlq_record, original_bytes
from ingest.transaction import (
    MAX_DEPTH,
    MAX_EVENT_MS,
    MIN_EVENT_MS,
    DecodeError,
    DecoderConfig,
    Transaction,
    decode,
    encode,
    parse_event_ms,
)

VALID: dict[str, Any] = {
    "transaction_id": "tx-1", "timestamp": "2026-03-01T12:30:00Z", "amount": 42.5,
    "currency": "EUR", "card_id": "card-1", "user_id": "user-1", "site_id": "site-1",
    "device_id": "dev-1", "ip_address": "10.0.0.1", "country": "DE",
    "merchant_category": "grocery", "card_present": False,
}
CANONICAL = Transaction(
    transaction_id="tx-1", event_ms=1_772_368_200_000, amount_minor=4250, currency="EUR",
    card_id="card-1", user_id="user-1", site_id="site-1", country="DE", device_id="dev-1",
    ip_address="10.0.0.1", merchant_category="grocery", card_present=False)


def with_(**changes: Any) -> bytes:
    record = {**VALID, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...}).encode()


def without(*fields: str) -> bytes:
    return json.dumps({k: v for k, v in VALID.items() if k not in fields}).encode()


def aliased(**renames: str) -> dict[str, Any]:
    return {renames.get(k, k): v for k, v in VALID.items()}


def nested(depth: int) -> bytes:
    """VALID with an unknown field of arrays nesting to ``depth`` (the message is depth 1)."""
    return with_()[:-1] + b', "extra": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def nested_objects(depth: int) -> bytes:
    """VALID with an unknown field of objects nesting to ``depth``."""
    return with_()[:-1] + b', "extra": ' + b'{"a": ' * (depth - 1) + b"1" + b"}" * depth


# At least 25 malformed or hostile inputs, each with the reason it must be rejected for.
HOSTILE: list[tuple[str, bytes, str]] = [
    ("empty message", b"", "invalid_json"),
    ("bad json", b'{"transaction_id": "t1", ', "invalid_json"),
    ("not json at all", b"hello world", "invalid_json"),
    ("json array", b'[{"transaction_id": "t1"}]', "not_an_object"),
    ("json string", b'"tx"', "not_an_object"),
    ("json null", b"null", "not_an_object"),
    ("non-utf8 bytes", b'{"transaction_id": "\xff\xfe"}', "not_utf8"),
    ("binary garbage", bytes(range(256)), "not_utf8"),
    ("huge payload", with_(merchant_category="x" * 70_000), "too_large"),
    ("missing transaction_id", without("transaction_id"), "missing_field"),
    ("missing card_id", without("card_id"), "missing_field"),
    ("missing timestamp", without("timestamp"), "missing_field"),
    ("missing amount and value", without("amount"), "missing_field"),
    ("missing user and customer", without("user_id"), "missing_field"),
    ("missing country", without("country"), "missing_field"),
    ("amount as bool", with_(amount=True), "wrong_type"),
    ("amount as object", with_(amount={"value": 1}), "wrong_type"),
    ("card_id as float", with_(card_id=12345.0), "wrong_type"),
    ("card_id as bool", with_(card_id=True), "wrong_type"),
    ("integer id of 200 digits", with_(user_id=10 ** 200), "invalid_id"),
    ("card_present as string", with_(card_present="yes"), "wrong_type"),
    ("negative amount", with_(amount=-5), "invalid_amount"),
    ("negative zero-point-one", with_(amount=-0.1), "invalid_amount"),
    ("amount not a number string", with_(amount="12,50"), "invalid_amount"),
    ("amount with fractional cents", with_(amount=10.005), "invalid_amount"),
    ("fractional yen", with_(amount=10.5, currency="JPY"), "invalid_amount"),
    ("absurd amount", with_(amount=1e12), "amount_out_of_range"),
    ("overflowing number", with_(amount=...)[:-1] + b', "amount": 1e999}', "wrong_type"),
    ("unknown country", with_(country="XX"), "invalid_country"),
    ("country name instead of code", with_(country="Germany"), "invalid_country"),
    ("unknown currency", with_(currency="ABC"), "invalid_currency"),
    ("naive timestamp", with_(timestamp="2026-03-01T12:30:00"), "invalid_timestamp"),
    ("garbage timestamp", with_(timestamp="yesterday"), "invalid_timestamp"),
    ("timestamp in 1970", with_(timestamp=5), "timestamp_out_of_range"),
    ("timestamp in milliseconds", with_(timestamp=1_772_368_200_000), "timestamp_out_of_range"),
    ("timestamp in 2099", with_(timestamp="2099-01-01T00:00:00Z"), "timestamp_in_future"),
    ("arrays 1,200 deep (2.5 kB)", nested(1201), "too_deep"),
    ("objects 1,200 deep", nested_objects(1201), "too_deep"),
    ("arrays 1,200 deep, unclosed", with_()[:-1] + b', "x": ' + b"[" * 1200, "too_deep"),
    ("one level past the limit", nested(MAX_DEPTH + 1), "too_deep"),
    ("empty card_id", with_(card_id=""), "invalid_id"),
    ("card_id too long", with_(card_id="c" * 129), "invalid_id"),
    ("NUL byte in id", with_(user_id="user\u0000; DROP TABLE blocklist"), "invalid_id"),
    ("newline in id", with_(site_id="site\n} MATCH (n) DETACH DELETE n //"), "invalid_id"),
    ("id with surrounding blanks", with_(card_id=" card-1 "), "invalid_id"),
    ("conflicting alias", with_(value=99.0), "conflicting_fields"),
    ("category with control chars", with_(merchant_category="gro\u0007cery"),
     "invalid_category"),
]


@pytest.mark.parametrize(("name", "data", "reason"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_input_is_rejected_with_its_reason(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(data)
    assert info.value.reason == reason, info.value.detail
    assert info.value.detail  # a human explanation accompanies every reason


def test_the_table_is_big_enough() -> None:
    assert len(HOSTILE) >= 25
    assert len({reason for _, _, reason in HOSTILE}) >= 12


def test_messages_name_the_field() -> None:
    with pytest.raises(DecodeError, match=r"'site_id' .or its alias 'merchant_id'. is missing"):
        decode(without("site_id"))
    with pytest.raises(DecodeError, match=r"Expected `int \| str`, got `float` - at `card_id`"):
        decode(with_(card_id=12345.5))


ACCEPTED_FORMS: dict[str, bytes] = {
    "canonical": with_(),
    "legacy aliases": json.dumps(aliased(amount="value", site_id="merchant_id",
                                         user_id="customer_id",
                                         country="merchant_country")).encode(),
    "alias equal to canonical": with_(value=42.5),
    "epoch seconds": with_(timestamp=1_772_368_200),
    "epoch seconds as float": with_(timestamp=1_772_368_200.0),
    "epoch seconds as string": with_(timestamp="1772368200"),
    "other time zone": with_(timestamp="2026-03-01T13:30:00+01:00"),
    "zone as +00:00": with_(timestamp="2026-03-01T12:30:00+00:00"),
    "amount as string": with_(amount="42.50"),
    "amount as integer-valued float": with_(amount=42.50),
    "lower-case codes": with_(country="de", currency="eur"),
    "unknown extra fields": with_(loyalty_tier="gold", mcc=5411),
    "pretty-printed": json.dumps(VALID, indent=2).encode(),
}


@pytest.mark.parametrize("form", list(ACCEPTED_FORMS))
def test_every_accepted_form_decodes_to_the_canonical_transaction(form: str) -> None:
    assert decode(ACCEPTED_FORMS[form]) == CANONICAL


def test_default_currency_and_optional_fields() -> None:
    minimal = without("currency", "device_id", "ip_address", "merchant_category", "card_present")
    tx = decode(minimal, DecoderConfig(default_currency="GBP"))
    assert tx.currency == "GBP" and tx.device_id is None and tx.card_present is None
    assert tx.amount_minor == 4250 and tx.amount == 42.5


def test_zero_and_three_decimal_currencies() -> None:
    assert decode(with_(amount=1500, currency="JPY")).amount_minor == 1500
    assert decode(with_(amount=1.234, currency="KWD")).amount_minor == 1234


def test_sql_and_cypher_in_ids_is_data_kept_verbatim() -> None:
    hostile_ids = {"card_id": "c' OR '1'='1", "user_id": "u\"); DROP TABLE blocklist; --",
                   "site_id": "s}) MATCH (n) DETACH DELETE n //", "device_id": "$param {x}"}
    tx = decode(with_(**hostile_ids))
    assert {k: getattr(tx, k) for k in hostile_ids} == hostile_ids
    assert decode(encode(tx)) == tx


def test_encode_is_canonical_and_round_trips() -> None:
    data = encode(CANONICAL)
    assert json.loads(data)["timestamp"] == "2026-03-01T12:30:00.000Z"
    assert json.loads(data)["amount"] == 42.5
    assert decode(data) == CANONICAL
    assert decode(encode(decode(ACCEPTED_FORMS["legacy aliases"]))) == CANONICAL


def test_limits_come_from_the_config() -> None:
    strict = DecoderConfig(max_amount=100, max_bytes=200)
    with pytest.raises(DecodeError, match="amount_out_of_range"):
        decode(with_(amount=150), DecoderConfig(max_amount=100))
    # the limit is in USD: 1.4 million yen (about 9,300 USD) is an ordinary large purchase
    assert decode(with_(amount=1_394_289, currency="JPY")).amount_minor == 1_394_289
    with pytest.raises(DecodeError, match="amount_out_of_range"):
        decode(with_(amount=200_000_000, currency="JPY"))
    with pytest.raises(DecodeError, match="too_large"):
        decode(with_(), strict)


@pytest.mark.parametrize("raw", [b'{"bad": ', b"\xff\xfe\x00garbage"])
def test_dlq_record_keeps_the_original_bytes_and_source(raw: bytes) -> None:
    try:
        decode(raw)
    except DecodeError as error:
        key, value = dlq_record(raw, b"card-9", error, "transactions", 3, 1234, now_ms=0)
    assert key == b"transactions:3:1234"  # deterministic: a redelivery gives the same key
    record = DLQ_DECODER.decode(value)
    assert original_bytes(record) == raw
    assert (record.source_topic, record.source_partition, record.source_offset) == (
        "transactions", 3, 1234)
    assert record.source_key == "card-9"
    assert record.reason in ("invalid_json", "not_utf8") and record.error
    assert record.rejected_at == "1970-01-01T00:00:00.000Z"
    assert (record.payload is None) == (record.payload_base64 is not None)
    assert record.payload_bytes == len(raw) and not record.payload_truncated
    assert record.payload_sha256 == hashlib.sha256(raw).hexdigest()


def test_mutated_messages_only_ever_raise_decode_error() -> None:
    """Seeded mutation fuzzing: whatever the bytes, decode returns or raises DecodeError."""
    import random

    rng = random.Random(1234)
    seeds = [with_(), *ACCEPTED_FORMS.values()]
    outcomes = {"ok": 0, "rejected": 0}
    for _ in range(5000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(data))
            action = rng.random()
            if action < 0.4:
                data[position] = rng.randrange(256)
            elif action < 0.7:
                del data[position]
            else:
                data.insert(position, rng.choice(b'{}[]",:0123456789.-eE\\\x00\xff'))
        try:
            decode(bytes(data))
            outcomes["ok"] += 1
        except DecodeError:
            outcomes["rejected"] += 1
    assert outcomes["rejected"] > 1000 and outcomes["ok"] > 100


LEGACY = {"timestamp": 1767225700, "transaction_id": 74191676, "user_id": 42, "card_id": 4242,
          "site_id": 7, "value": 99.9, "merchant_country": "US"}


def test_the_legacy_producers_payload_is_accepted() -> None:
    """Integer ids become their decimal text; no currency: the default (USD)."""
    tx = decode(json.dumps(LEGACY).encode())
    assert (tx.transaction_id, tx.user_id, tx.card_id, tx.site_id) == ("74191676", "42", "4242",
                                                                       "7")
    assert (tx.currency, tx.amount_minor, tx.event_ms) == ("USD", 9990, 1_767_225_700_000)
    assert decode(encode(tx)) == tx
    assert decode(with_(device_id=0, customer_id=...)).device_id == "0"
    assert decode(with_(user_id=-7)).user_id == "-7"


@pytest.mark.parametrize(("field", "value"), [
    ("transaction_id", 1.5), ("card_id", True), ("user_id", 42.0), ("site_id", False),
    ("merchant_id", 7.0), ("device_id", 1e3)])
def test_ids_that_are_floats_or_booleans_are_the_wrong_type(field: str, value: Any) -> None:
    with pytest.raises(DecodeError) as info:
        decode(json.dumps({**LEGACY, field: value}).encode())
    assert info.value.reason == "wrong_type" and field in info.value.detail


def test_a_missing_currency_without_a_default_is_a_missing_field() -> None:
    legacy = json.dumps(LEGACY).encode()
    assert decode(legacy, DecoderConfig(default_currency="eur")).currency == "EUR"
    for required in (DecoderConfig(default_currency=None), DecoderConfig(default_currency="")):
        with pytest.raises(DecodeError) as info:
            decode(legacy, required)
        assert info.value.reason == "missing_field" and "currency" in info.value.detail
    assert decode(with_(), DecoderConfig(default_currency=None)).currency == "EUR"
    with pytest.raises(ValueError, match="ISO 4217"):
        DecoderConfig(default_currency="XYZ")


@pytest.mark.parametrize("amount", [0, 0.0, -0.0, "0", "0.00"])
def test_zero_amounts_are_accepted(amount: Any) -> None:
    tx = decode(with_(amount=amount))
    assert tx.amount_minor == 0 and tx.amount == 0.0
    assert decode(encode(tx)) == tx


@pytest.mark.parametrize("amount", [-0.01, -5, -1e-9])
def test_negative_amounts_stay_rejected(amount: float) -> None:
    with pytest.raises(DecodeError) as info:
        decode(with_(amount=amount))
    assert info.value.reason == "invalid_amount"


def test_event_times_ahead_of_the_clock() -> None:
    now = int(time.time())
    assert decode(with_(timestamp=now + 23 * 3600)).event_ms == (now + 23 * 3600) * 1000
    with pytest.raises(DecodeError) as info:
        decode(with_(timestamp=now + 25 * 3600))
    assert info.value.reason == "timestamp_in_future"
    assert "24 h ahead" in info.value.detail
    hour = DecoderConfig(max_future_ms=3_600_000)
    with pytest.raises(DecodeError, match="timestamp_in_future"):
        decode(with_(timestamp=now + 2 * 3600), hour)
    backtest = dataclasses.replace(DecoderConfig(), max_future_ms=None)  # replaying history
    assert decode(with_(timestamp="2099-01-01T00:00:00Z"), backtest).timestamp == (
        "2099-01-01T00:00:00.000Z")
    with pytest.raises(DecodeError, match="timestamp_out_of_range"):  # absurd all the same
        decode(with_(timestamp="2150-01-01T00:00:00Z"), backtest)


def test_the_clock_is_read_again_only_past_the_horizon() -> None:
    """A config remembers now + tolerance as of its last clock read (days ago in a
    long-running daemon): a later event time reads the clock again before judging."""
    config = DecoderConfig()
    now_ms = int(time.time() * 1000)
    config._horizon.ms = now_ms - 3 * 86_400_000  # as if read three days ago, minus a day
    assert decode(with_(timestamp=now_ms // 1000 + 3600), config).event_ms > now_ms
    assert config._horizon.ms >= now_ms + 86_400_000  # moved on
    config._horizon.ms = 0
    with pytest.raises(DecodeError, match="timestamp_in_future"):
        decode(with_(timestamp=now_ms // 1000 + 2 * 86_400), config)


def test_the_depth_limit_is_exact_and_counts_no_brackets_in_strings() -> None:
    assert decode(nested(MAX_DEPTH)) == CANONICAL
    assert decode(nested_objects(MAX_DEPTH)) == CANONICAL
    for deeper in (nested(MAX_DEPTH + 1), nested_objects(MAX_DEPTH + 1)):
        with pytest.raises(DecodeError) as info:
            decode(deeper)
        assert info.value.reason == "too_deep", info.value
    stairs = with_()[:-1] + b', "x": ' + b"[[],{}," * 70 + b"1" + b"]" * 70 + b"}"
    with pytest.raises(DecodeError, match="too_deep"):
        decode(stairs)  # depth 72, never 65 openers in a row
    brackets_in_text = with_(extra="[" * 5000 + "{" * 5000 + '\\"[')
    assert decode(brackets_in_text) == CANONICAL  # strings hold any brackets they like
    wide = with_(extra=[{"a": [1, {"b": []}]}] * 2000)  # many brackets, depth 5
    assert decode(wide) == CANONICAL
    assert decode(nested(9), DecoderConfig(max_depth=9)) == CANONICAL
    with pytest.raises(DecodeError, match="too_deep"):
        decode(nested(10), DecoderConfig(max_depth=9))


def test_nesting_beyond_the_stack_is_too_deep_whatever_the_limit() -> None:
    """Nesting that exhausts the interpreter's stack inside msgspec is caught too."""
    lenient = DecoderConfig(max_depth=100_000, max_bytes=1 << 20)
    for deep in (nested(10_000), nested_objects(10_000)):
        with pytest.raises(DecodeError) as info:
            decode(deep, lenient)
        assert info.value.reason == "too_deep"


@pytest.mark.parametrize("value", [
    "2026-03-01T12:30:00.000Z", "2026-03-01T23:59:59.999Z", "2000-01-01T00:00:00.000Z",
    "2099-12-31T23:59:59.999Z", "2024-02-29T00:00:00.001Z", "1999-12-31T23:59:59.999Z",
    "2100-01-01T00:00:00.000Z", "2026-02-29T00:00:00.000Z", "2026-13-01T00:00:00.000Z",
    "2026-03-01T24:00:00.000Z", "2026-03-01T12:60:00.000Z", "2026-03-01T12:30:60.000Z",
    "2026-03-01 12:30:00.000Z", "2026-03-01T12:30:00,000Z", "+026-03-01T12:30:00.000Z",
    "2026-03-01T12:30:00.00+1Z", "2026-W09-7T12:30:00.000Z", "2026-03-01T12:30:00.000z",
    "\uff12\uff10\uff12\uff16-03-01T12:30:00.000Z",  # full-width digits
    "2026-03-01T12:30:00+01:00"])
def test_the_canonical_timestamp_shortcut_agrees_with_the_parser(value: str) -> None:
    """``parse_event_ms`` reads the canonical form by table look-ups: same answers as
    the ISO parser (here the reference), in range or not, valid or not."""
    try:
        parsed = datetime.fromisoformat(value)
        ms = round(parsed.timestamp() * 1000) if parsed.tzinfo else None
        expected: int | str = "invalid_timestamp" if ms is None else (
            ms if MIN_EVENT_MS <= ms < MAX_EVENT_MS else "timestamp_out_of_range")
    except ValueError:
        expected = "invalid_timestamp"
    try:
        got: int | str = parse_event_ms(value)
    except DecodeError as error:
        got = error.reason
    assert got == expected
