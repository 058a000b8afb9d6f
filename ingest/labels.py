"""Fraud labels (topic ``fraud-labels``, key ``transaction_id``): feedback from outside.

SPEC §3.2: ``transaction_id``, ``label`` (fraud|genuine), ``source``,
``reported_at``; the generator's labels also carry ``card_id``, ``user_id``,
``site_id``, ``device_id``, ``event_time`` and ``scenario``, which help when the
transaction's detail is not in the graph (past the retention window, or an allowed
transaction with ``FRAUDGRAPH_GRAPH_DETAIL=flagged``).  Unknown extra fields are ignored.

Labels are validated like transactions (:mod:`ingest.transaction`), and a label
that fails is a :class:`DecodeError` with a stable reason (→ DLQ):

* the message: at most :data:`MAX_LABEL_BYTES` (``too_large``), nesting at most
  :data:`~ingest.transaction.MAX_DEPTH` deep (``too_deep``), a JSON object
  (``invalid_json``, ``not_utf8``, ``not_an_object``, ``missing_field``,
  ``wrong_type``);
* ``transaction_id``, ``card_id``, ``user_id``, ``site_id``, ``device_id``: the
  transaction's id rules
  (printable, 1-128 characters, no surrounding blanks; JSON integers become their
  decimal text), else ``invalid_id``;
* ``label``: ``fraud`` or ``genuine`` (``invalid_label``); ``source`` and
  ``scenario``: printable text of 1-:data:`MAX_SOURCE_LENGTH` characters
  (``invalid_source``, ``invalid_scenario``);
* ``reported_at`` and ``event_time``: a timestamp in a form the transaction's
  ``timestamp`` takes (``invalid_timestamp``, ``timestamp_out_of_range``), and
  ``reported_at`` at most ``max_future_ms`` ahead of the wall clock
  (``timestamp_in_future``: a label from the future would hold back every label
  after it; ``None`` turns the check off, for backtests).

The :class:`LabelMessage` handed out carries the times parsed, ``reported_ms``
and ``event_ms``, and ``reported_at``/``event_time`` rewritten in the canonical
form (``2026-01-01T10:00:00.000Z``, :func:`~ingest.transaction.iso_from_ms`),
so text comparisons of them order them in time.
"""

from __future__ import annotations

import msgspec

from ingest.transaction import (
    MAX_DEPTH,
    MAX_FUTURE_MS,
    DecodeError,
    check_not_future,
    iso_from_ms,
    parse_event_ms,
    parse_json,
    unexpected,
    valid_id,
)

LABELS = ("fraud", "genuine")
#: A label is a few hundred bytes; anything near this is not one.
MAX_LABEL_BYTES = 4096
MAX_SOURCE_LENGTH = 64


class LabelMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A validated label: ids as the transaction's, times in epoch ms (UTC) and as
    canonical ISO-8601 text."""

    transaction_id: str
    label: str
    source: str
    reported_at: str
    reported_ms: int
    card_id: str | None = None
    user_id: str | None = None
    site_id: str | None = None
    device_id: str | None = None
    event_time: str | None = None
    event_ms: int | None = None
    scenario: str | None = None


class _Wire(msgspec.Struct):
    """The JSON as it arrives, types checked by msgspec."""

    transaction_id: str | int
    label: str
    source: str
    reported_at: str | int | float
    card_id: str | int | None = None
    user_id: str | int | None = None
    site_id: str | int | None = None
    device_id: str | int | None = None
    event_time: str | int | float | None = None
    scenario: str | None = None


_DECODER = msgspec.json.Decoder(_Wire)


def decode_label(raw: bytes, *, max_future_ms: int | None = MAX_FUTURE_MS,
                 max_bytes: int = MAX_LABEL_BYTES,
                 max_depth: int = MAX_DEPTH) -> tuple[LabelMessage, int | None]:
    """The label and its transaction's event time in epoch ms (None when not given);
    raises DecodeError (never anything else) when the label is not valid."""
    wire = parse_json(_DECODER, raw, max_bytes, max_depth, "a label")
    try:
        if wire.label not in LABELS:
            raise DecodeError("invalid_label", f"label {wire.label[:40]!r} is not fraud or "
                              "genuine")
        reported_ms = parse_event_ms(wire.reported_at, "reported_at")
        if max_future_ms is not None:
            check_not_future(reported_ms, max_future_ms, "reported_at")
        event_ms = (None if wire.event_time is None
                    else parse_event_ms(wire.event_time, "event_time"))
        label = LabelMessage(
            transaction_id=valid_id(wire.transaction_id, "transaction_id"),
            label=wire.label,
            source=_text(wire.source, "source", "invalid_source"),
            reported_at=iso_from_ms(reported_ms),
            reported_ms=reported_ms,
            card_id=None if wire.card_id is None else valid_id(wire.card_id, "card_id"),
            user_id=None if wire.user_id is None else valid_id(wire.user_id, "user_id"),
            site_id=None if wire.site_id is None else valid_id(wire.site_id, "site_id"),
            device_id=(None if wire.device_id is None
                       else valid_id(wire.device_id, "device_id")),
            event_time=None if event_ms is None else iso_from_ms(event_ms),
            event_ms=event_ms,
            scenario=(None if wire.scenario is None
                      else _text(wire.scenario, "scenario", "invalid_scenario")),
        )
    except DecodeError:
        raise
    except Exception as exc:  # a value no check foresaw: still the contract's DecodeError
        raise unexpected(exc) from None
    return label, event_ms


def _text(value: str, field: str, reason: str) -> str:
    if not 0 < len(value) <= MAX_SOURCE_LENGTH or not value.isprintable():
        raise DecodeError(reason, f"{field} must be printable text of 1-{MAX_SOURCE_LENGTH} "
                          f"characters (no control characters; got {len(value)})")
    return value
