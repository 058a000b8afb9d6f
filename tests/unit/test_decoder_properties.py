"""Property-based fuzzing of the decoder (hypothesis): whatever arrives, decode either
returns a valid transaction or raises DecodeError with a known reason, and a decoded
transaction re-encodes to itself."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.transaction import DecodeError, decode, encode
from tests.unit.test_transaction import VALID

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8)


def check(raw: bytes) -> None:
    try:
        tx = decode(raw)
    except DecodeError as error:
        assert error.reason and error.detail
        return
    assert tx.amount_minor > 0 and tx.transaction_id and tx.card_id
    assert decode(encode(tx)) == tx


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
