"""The naive baseline of `fraudgraph bench`: the consumer a first tutorial would write.

Per message: decode it with ``json``, one PostgreSQL round trip that checks the
card against the blocklist and stores the decision, commit; no batching, no
graph, no rules.  It exists to be measured beside the daemon on the same input.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from ingest import kafka
from storage.blocklist import BlocklistStore

#: One statement, one round trip: look the card up and store the decision.
_CHECK_AND_STORE = """
INSERT INTO naive_decisions (transaction_id, decision)
SELECT %(id)s, CASE WHEN EXISTS (
    SELECT 1 FROM blocklist WHERE entity_type = 'card' AND entity_id = %(card)s
      AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()))
  THEN 'block' ELSE 'allow' END
ON CONFLICT (transaction_id) DO NOTHING
"""
_TABLE = """
CREATE TABLE IF NOT EXISTS naive_decisions (
    transaction_id text PRIMARY KEY,
    decision text NOT NULL,
    decided_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class NaiveResult:
    messages: int
    seconds: float
    cpu_seconds: float

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


def run(bootstrap: str, topic: str, group: str, store: BlocklistStore, limit: int,
        idle_seconds: float = 5.0) -> NaiveResult:
    """Consume up to ``limit`` messages of ``topic`` one at a time."""
    conn = store.conn
    with conn, conn.cursor() as cur:
        cur.execute(_TABLE)
    conn.autocommit = True  # every message its own transaction, as tutorials do
    consumer = kafka.consumer(bootstrap, group, **{"enable.auto.commit": True})  # as tutorials
    consumer.subscribe([topic])
    done, started, cpu_started = 0, 0.0, 0.0
    idle_since = time.monotonic()
    try:
        while done < limit and time.monotonic() - idle_since < idle_seconds:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                if not consumer.assignment():
                    idle_since = time.monotonic()
                continue
            if not started:
                started, cpu_started = time.monotonic(), time.process_time()
            idle_since = time.monotonic()
            record = json.loads(msg.value() or b"{}")
            with conn.cursor() as cur:
                cur.execute(_CHECK_AND_STORE, {"id": record.get("transaction_id"),
                                               "card": record.get("card_id")})
            done += 1
        elapsed = time.monotonic() - started if started else 0.0
        return NaiveResult(done, elapsed, time.process_time() - cpu_started)
    finally:
        consumer.close()
        conn.autocommit = False
