"""Dead-letter records: a rejected message with its original bytes, reason and source.

The record's key is ``<topic>:<partition>:<offset>`` of the source message, so a
message rejected twice (at-least-once redelivery) gives the same DLQ key.

A record always fits within Kafka's default message limit (1 MB,
``message.max.bytes``), whatever was rejected: at most
:data:`MAX_PAYLOAD_BYTES` of the message are copied (``payload_truncated`` then
says so), and its length and SHA-256 are recorded either way; the source key
and the error text are capped too.  The worst case is a payload of control
characters, each escaped to six bytes in JSON: 128 KiB become 768 KiB.
"""

from __future__ import annotations

import base64
import hashlib
import time

import msgspec

from ingest.transaction import DecodeError, iso_from_ms

#: Bytes of a rejected message copied into its record: every message the decoder
#: reads whole (its limit is 64 KiB by default), and at most 768 KiB of JSON.
MAX_PAYLOAD_BYTES = 128 * 1024
MAX_KEY_BYTES = 1024
MAX_ERROR_CHARS = 1000
#: What a record may grow to (Kafka's default limit is 1,000,000 bytes).
MAX_RECORD_BYTES = 900_000


class DlqRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    reason: str
    error: str
    source_topic: str
    source_partition: int
    source_offset: int
    rejected_at: str
    source_key: str | None = None
    payload: str | None = None  # the original bytes (or their start), when they are UTF-8
    payload_base64: str | None = None  # otherwise, base64
    payload_bytes: int | None = None  # the original message's length
    payload_sha256: str | None = None  # and its SHA-256 (hex), whether copied whole or not
    payload_truncated: bool = False  # only the first MAX_PAYLOAD_BYTES (or fewer) copied


_ENCODER = msgspec.json.Encoder()
DLQ_DECODER = msgspec.json.Decoder(DlqRecord)


def dlq_record(raw: bytes | None, key: bytes | None, error: DecodeError, topic: str,
               partition: int, offset: int, now_ms: int | None = None, *,
               max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> tuple[bytes, bytes]:
    """Key and value of the DLQ record for one rejected message: at most
    :data:`MAX_RECORD_BYTES` (a larger ``max_payload_bytes`` is halved until it fits)."""
    payload = payload_b64 = length = digest = None
    truncated = False
    if raw is not None:
        length, digest = len(raw), hashlib.sha256(raw).hexdigest()
        truncated = length > max_payload_bytes
        payload, payload_b64 = _copy(raw[:max_payload_bytes] if truncated else raw, truncated)
    source_key = None
    if key is not None:
        source_key = key[:MAX_KEY_BYTES].decode("utf-8", errors="backslashreplace")
    record = DlqRecord(
        reason=error.reason, error=error.detail[:MAX_ERROR_CHARS], source_topic=topic,
        source_partition=partition, source_offset=offset,
        rejected_at=iso_from_ms(now_ms if now_ms is not None else int(time.time() * 1000)),
        source_key=source_key, payload=payload, payload_base64=payload_b64,
        payload_bytes=length, payload_sha256=digest, payload_truncated=truncated)
    value = _ENCODER.encode(record)
    if len(value) > MAX_RECORD_BYTES and max_payload_bytes > 0:
        return dlq_record(raw, key, error, topic, partition, offset, now_ms,
                          max_payload_bytes=max_payload_bytes // 2)
    return f"{topic}:{partition}:{offset}".encode(), value


def _copy(data: bytes, truncated: bool) -> tuple[str | None, str | None]:
    """``(text, None)`` for UTF-8 (a cut through a character's last bytes is moved
    before it), else ``(None, base64)``."""
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as bad:
        if truncated and bad.reason == "unexpected end of data":
            try:
                return data[:bad.start].decode("utf-8"), None
            except UnicodeDecodeError:
                pass
    return None, base64.b64encode(data).decode("ascii")


def original_bytes(record: DlqRecord) -> bytes | None:
    """The rejected message's bytes, exactly as they arrived; None when the record
    holds only their start (``payload_truncated``) or none of them."""
    if record.payload_truncated:
        return None
    if record.payload is not None:
        return record.payload.encode("utf-8")
    if record.payload_base64 is not None:
        return base64.b64decode(record.payload_base64)
    return None
