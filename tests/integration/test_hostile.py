"""No message stops the stream: every hostile case of the poison-input review in one
stream (and its labels), between good transactions, through the real daemon and
projector; and the legacy producer's payload and a zero amount, as raw bytes."""

from __future__ import annotations

import json

import msgspec

from fraudgraph import connect
from fraudgraph.settings import Settings
from ingest import kafka
from ingest.dlq import DLQ_DECODER
from ingest.transaction import encode
from tests.integration.test_daemon import (
    T0,
    decisions,
    produce,
    run_daemon,
    scratch,
    tx,
)

MAX_MESSAGE = 1_000_000  # the broker's limit on a record (message.max.bytes)


def _deep(unique: str, depth: int) -> bytes:
    """A transaction whose extra field nests arrays ``depth`` deep (2.5 kB at 1,200)."""
    good = json.loads(encode(tx(unique, 900, 1, card="deep")))
    return json.dumps(good)[:-1].encode() + b', "extra": ' + b"[" * depth + b"]" * depth + b"}"


def _label(transaction_id: str, **fields: object) -> bytes:
    return json.dumps({"transaction_id": transaction_id, "label": "fraud", "source": "chargeback",
                       "reported_at": "2026-01-02T00:00:00Z", **fields}).encode()


def test_hostile_messages_go_to_the_dlq_and_the_stream_goes_on(stack: Settings,
                                                               unique: str) -> None:
    settings = scratch(stack, unique, partitions=1)
    burst = [tx(unique, i, 600 + i, card="burst", amount_minor=3000 + 700 * i) for i in range(5)]
    far = msgspec.structs.replace(tx(unique, 99, 0, card="future"), event_ms=4_070_908_800_000)
    plain = [tx(unique, 10 + i, 30 * i, card=f"p{i}") for i in range(4)]
    hostile = {
        "deep": _deep(unique, 1200),
        "control": b"\x01" * 200_000,
        "future": encode(far),
    }
    stream = [encode(plain[0]), hostile["deep"], encode(plain[1]), hostile["control"],
              *(encode(t) for t in burst[:3]), hostile["future"], *(encode(t) for t in burst[3:]),
              encode(plain[2]), encode(plain[3])]
    labels = [
        _label(plain[0].transaction_id, card_id=plain[0].card_id),  # a good one
        _label(plain[1].transaction_id, source="chargeback\x00evil"),
        _label(plain[2].transaction_id, card_id="c" * 5000),
        _label(plain[3].transaction_id, reported_at="2099-01-01T00:00:00Z"),
    ]
    produce(settings, stream)
    produce(settings, labels, topic=settings.topics.labels)
    stats = run_daemon(settings, unique, None)  # the projector first, then the daemon

    got = decisions(settings)
    good = [*plain, *burst]
    assert set(got) == {t.transaction_id for t in good}
    # the burst is flagged as if the transaction dated 2099 had not been there
    assert [got[t.transaction_id].decision for t in burst] == ["allow", "allow", "review",
                                                               "review", "review"]
    assert stats.consumed == len(stream) and stats.rejected == len(hostile)

    dlq = [(m, DLQ_DECODER.decode(m.value())) for m in
           kafka.read_all(settings.kafka.bootstrap, settings.topics.dlq)]
    assert all(len(m.value()) < MAX_MESSAGE for m, _ in dlq)
    by_topic: dict[str, list[str]] = {}
    for _, record in dlq:
        by_topic.setdefault(record.source_topic, []).append(record.reason)
    # one record per bad message (the daemon owns the DLQ; the projector counts and skips)
    assert sorted(by_topic[settings.topics.transactions]) == sorted(
        ["too_deep", "too_large", "timestamp_in_future"])
    assert len(by_topic[settings.topics.labels]) == 3
    assert "timestamp_in_future" in by_topic[settings.topics.labels]

    store = connect.blocklist(settings)
    try:
        with store.conn.cursor() as cur:
            cur.execute("SELECT transaction_id FROM fraud_labels")
            stored = {row[0] for row in cur.fetchall()}
        store.conn.rollback()
    finally:
        store.close()
    assert stored == {plain[0].transaction_id}
    assert stats.labels == 1


def test_the_legacy_payload_and_a_zero_amount_are_decided(stack: Settings, unique: str) -> None:
    settings = scratch(stack, unique, partitions=1)
    legacy_id = int(unique, 16) % 10**9
    legacy = json.dumps({"timestamp": T0 // 1000 + 100, "transaction_id": legacy_id,
                         "user_id": 42, "card_id": 4242, "site_id": 7, "value": 99.9,
                         "country": "US"}).encode()
    zero = encode(tx(unique, 1, 1, card="verify", amount_minor=0))
    produce(settings, [legacy, zero])
    stats = run_daemon(settings, unique, None)
    got = decisions(settings)
    assert stats.rejected == 0
    assert set(got) == {str(legacy_id), f"{unique}-t1"}
    record = got[str(legacy_id)]
    assert (record.card_id, record.user_id, record.site_id) == ("4242", "42", "7")
    assert (record.currency, record.amount_minor) == ("USD", 9990)
    assert got[f"{unique}-t1"].amount_minor == 0
