"""Dead-letter records: a rejected message with its original bytes, reason and source.

The record's key is ``<topic>:<partition>:<offset>`` of the source message, so a
message rejected twice (at-least-once redelivery) gives the same DLQ key.
"""

from __future__ import annotations

import base64
import time

import msgspec

from ingest.transaction import DecodeError, iso_from_ms


class DlqRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    reason: str
    error: str
    source_topic: str
    source_partition: int
    source_offset: int
    rejected_at: str
    source_key: str | None = None
    payload: str | None = None  # the original bytes, when they are UTF-8
    payload_base64: str | None = None  # otherwise, base64


_ENCODER = msgspec.json.Encoder()
DLQ_DECODER = msgspec.json.Decoder(DlqRecord)


def dlq_record(raw: bytes | None, key: bytes | None, error: DecodeError, topic: str,
               partition: int, offset: int, now_ms: int | None = None) -> tuple[bytes, bytes]:
    """Key and value of the DLQ record for one rejected message."""
    payload = payload_b64 = None
    if raw is not None:
        try:
            payload = raw.decode("utf-8")
        except UnicodeDecodeError:
            payload_b64 = base64.b64encode(raw).decode("ascii")
    source_key = None
    if key is not None:
        source_key = key.decode("utf-8", errors="backslashreplace")
    record = DlqRecord(
        reason=error.reason, error=error.detail, source_topic=topic,
        source_partition=partition, source_offset=offset,
        rejected_at=iso_from_ms(now_ms if now_ms is not None else int(time.time() * 1000)),
        source_key=source_key, payload=payload, payload_base64=payload_b64)
    return f"{topic}:{partition}:{offset}".encode(), _ENCODER.encode(record)


def original_bytes(record: DlqRecord) -> bytes | None:
    """The rejected message's bytes, exactly as they arrived."""
    if record.payload is not None:
        return record.payload.encode("utf-8")
    if record.payload_base64 is not None:
        return base64.b64decode(record.payload_base64)
    return None
