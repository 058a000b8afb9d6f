"""A round trip through all three services: what `fraudgraph smoke` and the demo run.

Kafka: produce one message and consume it back with a fresh consumer group.
Neo4j: MERGE a marker node over Bolt with auth, read it back, delete it.
PostgreSQL: write and read a row as the application role.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import cypher
from fraudgraph.errors import ServiceUnavailable
from fraudgraph.settings import Settings, require_secret
from graph import driver as neo4j_driver
from ingest import kafka
from storage import postgres as store

SMOKE_TOPIC = "fraudgraph-smoke"


@dataclass(frozen=True)
class Check:
    service: str
    detail: str
    seconds: float


def run(settings: Settings) -> list[Check]:
    """Run the three round trips; raise ServiceUnavailable naming the first that fails."""
    token = uuid.uuid4().hex
    return [
        _timed("kafka", settings.kafka.bootstrap, lambda: _kafka(settings, token)),
        _timed("neo4j", settings.neo4j.uri, lambda: _neo4j(settings, token)),
        _timed("postgres", "the configured DSN", lambda: _postgres(settings, token)),
    ]


def _timed(service: str, where: str, step: Callable[[], str]) -> Check:
    started = time.perf_counter()
    try:
        detail = step()
    except ServiceUnavailable:
        raise
    except Exception as exc:  # any client error means the service is not usable
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ServiceUnavailable(
            f"{service} at {where} failed the round trip ({first}); "
            "run `fraudgraph stack up`, then `fraudgraph stack status`") from None
    return Check(service, detail, time.perf_counter() - started)


def _kafka(settings: Settings, token: str) -> str:
    bootstrap = settings.kafka.bootstrap
    kafka.broker_count(bootstrap, timeout=5)
    kafka.ensure_topics(bootstrap, [SMOKE_TOPIC], partitions=1)
    producer = kafka.producer(bootstrap)
    delivered: list[tuple[int | None, int | None]] = []
    producer.produce(SMOKE_TOPIC, key=token.encode(), value=json.dumps({"token": token}).encode(),
                     on_delivery=lambda e, m: delivered.append((m.partition(), m.offset()))
                     if e is None else None)
    if producer.flush(10) != 0 or not delivered:
        raise ServiceUnavailable(f"kafka at {bootstrap} did not acknowledge the smoke message")
    partition, offset = delivered[0]
    assert partition is not None and offset is not None
    msg = kafka.read_at(bootstrap, SMOKE_TOPIC, partition, offset)
    if msg is None or msg.key() != token.encode():
        raise ServiceUnavailable(f"kafka at {bootstrap}: the smoke message did not come back")
    return f"produced and consumed 1 message on {SMOKE_TOPIC}"


def _neo4j(settings: Settings, token: str) -> str:
    n = settings.neo4j
    password = require_secret(n.password, "FRAUDGRAPH_NEO4J_PASSWORD")
    with neo4j_driver.connect(n.uri, n.user, password) as driver:
        records, _, _ = driver.execute_query(cypher.load("smoke_roundtrip"), id=token,
                                             database_="neo4j")
        assert records and records[0]["id"] == token, "marker node not read back"
        driver.execute_query(cypher.load("smoke_cleanup"), id=token, database_="neo4j")
    return "wrote and read a node over Bolt with auth"


def _postgres(settings: Settings, token: str) -> str:
    conn = store.connect(settings.postgres.dsn())
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE smoke_check (token text PRIMARY KEY)")
            cur.execute("INSERT INTO smoke_check VALUES (%s)", (token,))
            cur.execute("SELECT token, current_user FROM smoke_check WHERE token = %s", (token,))
            row = cur.fetchone()
        conn.rollback()
    finally:
        conn.close()
    assert row is not None and row[0] == token, "row not read back"
    return f"wrote and read a row as role {row[1]}"
