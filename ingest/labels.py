"""Fraud labels (topic ``fraud-labels``, key ``transaction_id``): feedback from outside.

SPEC §3.2: ``transaction_id``, ``label`` (fraud|genuine), ``source``,
``reported_at``; the generator's labels also carry ``card_id``, ``user_id`` and
``event_time``, which help when the transaction's detail is no longer in the
graph.  A record that does not decode is a :class:`DecodeError` (→ DLQ).
"""

from __future__ import annotations

import msgspec

from ingest.transaction import DecodeError, parse_event_ms

LABELS = ("fraud", "genuine")


class LabelMessage(msgspec.Struct, frozen=True):
    transaction_id: str
    label: str
    source: str
    reported_at: str
    card_id: str | None = None
    user_id: str | None = None
    event_time: str | None = None
    scenario: str | None = None


_DECODER = msgspec.json.Decoder(LabelMessage)


def decode_label(raw: bytes) -> tuple[LabelMessage, int | None]:
    """The label and its transaction's event time in epoch ms (None when not given)."""
    try:
        label = _DECODER.decode(raw)
    except msgspec.DecodeError as exc:
        raise DecodeError("invalid_label", str(exc)[:200]) from None
    if label.label not in LABELS:
        raise DecodeError("invalid_label", f"label {label.label[:40]!r} is not fraud or genuine")
    if not label.transaction_id or len(label.transaction_id) > 128:
        raise DecodeError("invalid_label", "transaction_id must be 1-128 characters")
    parse_event_ms(label.reported_at)  # raises DecodeError if not a timestamp
    event_ms = parse_event_ms(label.event_time) if label.event_time else None
    return label, event_ms
