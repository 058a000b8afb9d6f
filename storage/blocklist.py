"""The PostgreSQL blocklist: entries, their history, flagged transactions, fraud labels.

One row per ``(entity_type, entity_id)``; every write is an ``ON CONFLICT``
upsert, so replays after an at-least-once redelivery change nothing. The
stream never queries per transaction: ``detectors.blocklist.BlocklistCache``
holds the active entries in process and polls :meth:`BlocklistStore.changed_since`
at most once per ``refresh_seconds``, and at once when :class:`BlocklistListener`
hears that a change committed (a trigger notifies on every write).
"""

from __future__ import annotations

import builtins
import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection as Connection
from psycopg2.extras import Json, execute_values

from detectors.blocklist import Entry, FlaggedTransaction, Key, LabelRow, NewEntry, collapse

log = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "compose" / "sql" / "schema.sql"
#: changed_since() re-reads rows this much older than the watermark: a transaction
#: stamps updated_at with its start time and may commit after a reader moved past it.
WATERMARK_MARGIN = timedelta(seconds=5)
#: per transaction, as the reports stood at %(as_of)s: fraud when its latest report by then
#: says fraud (a tie: fraud), dated by its first fraud report
_FRAUD_REPORTS = """
SELECT transaction_id,
       (extract(epoch FROM min(reported_at) FILTER (WHERE label = 'fraud')) * 1000)::bigint
FROM fraud_label_reports
WHERE %(as_of)s::bigint IS NULL OR reported_at <= to_timestamp(%(as_of)s::bigint / 1000.0)
GROUP BY transaction_id
HAVING (array_agg(label ORDER BY reported_at DESC, label))[1] = 'fraud'
"""
CHANNEL = "fraudgraph_blocklist"  # schema.sql's trigger notifies here; payload: schema
_SCHEMA_LOCK = 7_244_318_001  # pg_advisory_xact_lock key: one migrate() at a time


# -- SQL (parameters only; execute_values fills the single VALUES %s) ----------

# A row is re-activated (takes the incoming values) when it expired, or when a person
# revoked it and a person lists it again (source 'manual'): a revocation wins over every
# automatic source.  An active row keeps the higher score (with its reason, source and
# evidence) and the later expiry (NULL: never). A replay that changes nothing touches no
# row.  Returns one row: the rows changed and the keys refused for a revocation.
_UPSERT = """
WITH incoming (entity_type, entity_id, reason, source, score, evidence, ttl_seconds, actor) AS (
    VALUES %s
), refused AS (
    SELECT i.entity_type, i.entity_id FROM incoming i
    JOIN blocklist b USING (entity_type, entity_id)
    WHERE b.revoked_at IS NOT NULL AND i.source <> 'manual'
), upserted AS (
    INSERT INTO blocklist AS b (entity_type, entity_id, reason, source, score, evidence,
                                created_at, updated_at, expires_at)
    SELECT entity_type, entity_id, reason, source, score, evidence, now(), now(),
           now() + make_interval(secs => ttl_seconds)
    FROM incoming
    WHERE true
    ON CONFLICT (entity_type, entity_id) DO UPDATE SET
        reason = CASE WHEN {takes} THEN EXCLUDED.reason ELSE b.reason END,
        source = CASE WHEN {takes} THEN EXCLUDED.source ELSE b.source END,
        evidence = CASE WHEN {takes} THEN EXCLUDED.evidence ELSE b.evidence END,
        score = CASE WHEN {inactive} THEN EXCLUDED.score
                     ELSE greatest(b.score, EXCLUDED.score) END,
        expires_at = CASE WHEN {inactive} THEN EXCLUDED.expires_at
                          WHEN b.expires_at IS NULL OR EXCLUDED.expires_at IS NULL THEN NULL
                          ELSE greatest(b.expires_at, EXCLUDED.expires_at) END,
        updated_at = now(),
        revoked_at = NULL,
        revoked_by = NULL
    WHERE (b.revoked_at IS NULL OR EXCLUDED.source = 'manual')
      AND ({takes} OR EXCLUDED.score > b.score
           OR (b.expires_at IS NOT NULL
               AND (EXCLUDED.expires_at IS NULL OR EXCLUDED.expires_at > b.expires_at)))
    RETURNING b.entity_type, b.entity_id, b.reason, b.source, b.score, b.evidence,
              b.expires_at, (b.xmax = 0) AS inserted
), history AS (
    INSERT INTO blocklist_history (entity_type, entity_id, action, reason, source, score,
                                   evidence, expires_at, actor)
    SELECT u.entity_type, u.entity_id, CASE WHEN u.inserted THEN 'add' ELSE 'update' END,
           u.reason, u.source, u.score, u.evidence, u.expires_at, i.actor
    FROM upserted u JOIN incoming i USING (entity_type, entity_id)
    RETURNING action
)
SELECT (SELECT count(*) FROM history),
       coalesce((SELECT json_agg(json_build_array(entity_type, entity_id)) FROM refused), '[]')
""".format(
    inactive="(b.revoked_at IS NOT NULL OR coalesce(b.expires_at <= now(), false))",
    # the incoming entry takes over the row's reason, source and evidence (see wins())
    takes="(b.revoked_at IS NOT NULL OR coalesce(b.expires_at <= now(), false)"
          " OR (-coalesce((EXCLUDED.evidence->>'since_ms')::float8, '-Infinity'),"
          " EXCLUDED.score) > (-coalesce((b.evidence->>'since_ms')::float8, '-Infinity'),"
          " b.score))")
@dataclass(frozen=True)
class Upserted:
    changed: int  # rows inserted or changed (each with a history row)
    refused: frozenset[Key]  # revoked by a person: left as they are


_UPSERT_TEMPLATE = "(%s, %s, %s, %s, %s::double precision, %s::jsonb, %s::integer, %s::text)"

_REVOKE = """
WITH revoked AS (
    UPDATE blocklist SET revoked_at = now(), revoked_by = %(actor)s, updated_at = now()
    WHERE entity_type = %(entity_type)s AND entity_id = %(entity_id)s
      AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
    RETURNING entity_type, entity_id, source, score, evidence, expires_at
)
INSERT INTO blocklist_history (entity_type, entity_id, action, reason, source, score,
                               evidence, expires_at, actor)
SELECT entity_type, entity_id, 'revoke', %(reason)s, source, score, evidence, expires_at,
       %(actor)s
FROM revoked
RETURNING id
"""

_GET = """
SELECT entity_type, entity_id, reason, source, score, evidence, created_at, updated_at,
       expires_at, revoked_at, revoked_by
FROM blocklist WHERE entity_type = %s AND entity_id = %s
"""

_HISTORY = """
SELECT id, action, reason, source, score, evidence, expires_at, actor, at
FROM blocklist_history WHERE entity_type = %s AND entity_id = %s ORDER BY id
"""

_LIST = """
SELECT entity_type, entity_id, reason, source, score, evidence, created_at, updated_at,
       expires_at, revoked_at, revoked_by
FROM blocklist
WHERE (%(entity_type)s::text IS NULL OR entity_type = %(entity_type)s)
  AND (%(source)s::text IS NULL OR source = %(source)s)
  AND (%(include_inactive)s OR (revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())))
ORDER BY updated_at DESC, entity_type, entity_id
LIMIT %(limit)s
"""

_CHANGED_SINCE = """
SELECT entity_type, entity_id, reason, source, score, evidence, created_at, updated_at,
       expires_at, revoked_at, revoked_by
FROM blocklist
WHERE %(since)s::timestamptz IS NULL OR updated_at > %(since)s::timestamptz
ORDER BY updated_at, entity_type, entity_id
"""

# Flagged transactions arrive by COPY (CSV) into a per-session scratch table, then one
# INSERT: a third of the time of a multi-row VALUES statement the client must render.
_FLAGGED_SCRATCH = """
CREATE TEMP TABLE IF NOT EXISTS flagged_incoming (
    transaction_id text, decision text, score double precision, reasons jsonb,
    card_id text, user_id text, site_id text, device_id text, amount_minor bigint,
    currency text, event_ms bigint, decided_ms bigint, country text, ip_address text,
    merchant_category text, card_present boolean
) ON COMMIT DELETE ROWS
"""
_FLAGGED_COPY = "COPY flagged_incoming FROM STDIN WITH (FORMAT csv)"
_RECORD_FLAGGED = """
INSERT INTO flagged_transactions (transaction_id, decision, score, reasons, card_id, user_id,
                                  site_id, device_id, amount_minor, currency, event_time,
                                  decided_at, country, ip_address, merchant_category,
                                  card_present)
SELECT DISTINCT ON (transaction_id)
       transaction_id, decision, score, reasons, card_id, user_id, site_id, device_id,
       amount_minor, currency, to_timestamp(event_ms / 1000.0), to_timestamp(decided_ms / 1000.0),
       country, ip_address, merchant_category, card_present
FROM flagged_incoming
ON CONFLICT (transaction_id) DO NOTHING
RETURNING transaction_id
"""
# Flagged transactions whose decision has not reached the graph, decided within the
# window (oldest first): what a daemon that stopped before its worker wrote them left.
_UNGRAPHED = """
SELECT transaction_id, decision, score, reasons, card_id, user_id, site_id, device_id,
       amount_minor, currency, (extract(epoch FROM event_time) * 1000)::bigint,
       (extract(epoch FROM decided_at) * 1000)::bigint, country, ip_address,
       merchant_category, card_present
FROM flagged_transactions
WHERE graphed_at IS NULL AND decided_at > now() - %(window)s * interval '1 second'
ORDER BY decided_at, transaction_id
LIMIT %(limit)s
"""
_MARK_GRAPHED = """
UPDATE flagged_transactions SET graphed_at = now()
WHERE transaction_id = ANY(%(ids)s) AND graphed_at IS NULL
"""

# Within one call the latest report per transaction wins; across calls an older
# report never overwrites a newer one, and a replay changes nothing.
_RECORD_LABELS = """
WITH incoming (transaction_id, label, source, reported_at, card_id, user_id, site_id) AS (
    VALUES %s
), reports AS (
    INSERT INTO fraud_label_reports (transaction_id, label, reported_at)
    SELECT DISTINCT transaction_id, label, reported_at FROM incoming
    ON CONFLICT DO NOTHING
)
INSERT INTO fraud_labels AS l (transaction_id, label, source, reported_at, card_id, user_id,
                               site_id)
SELECT DISTINCT ON (transaction_id) transaction_id, label, source, reported_at, card_id,
       user_id, site_id
FROM incoming
ORDER BY transaction_id, reported_at DESC
ON CONFLICT (transaction_id) DO UPDATE SET
    label = EXCLUDED.label, source = EXCLUDED.source, reported_at = EXCLUDED.reported_at,
    card_id = coalesce(EXCLUDED.card_id, l.card_id),
    user_id = coalesce(EXCLUDED.user_id, l.user_id),
    site_id = coalesce(EXCLUDED.site_id, l.site_id)
WHERE EXCLUDED.reported_at >= l.reported_at
  AND (EXCLUDED.label, EXCLUDED.source, EXCLUDED.reported_at)
      IS DISTINCT FROM (l.label, l.source, l.reported_at)
RETURNING transaction_id
"""
_LABELS_TEMPLATE = "(%s::text, %s::text, %s::text, %s::timestamptz, %s::text, %s::text, %s::text)"

_COUNTS = """
SELECT (SELECT count(*) FROM blocklist), (SELECT count(*) FROM blocklist_history),
       (SELECT count(*) FROM flagged_transactions), (SELECT count(*) FROM fraud_labels)
"""


def _entry(row: tuple[Any, ...]) -> Entry:
    return Entry(row[0], row[1], row[2], row[3], float(row[4]), row[5] or {}, *row[6:11])


class BlocklistStore:
    """The blocklist tables over one psycopg2 connection (not thread-safe).

    Every method runs in its own transaction: writes commit on success and roll
    back (then re-raise) on an exception; reads end their transaction too, so a
    long-lived store never sits idle in a transaction. All writes are idempotent.
    """

    def __init__(self, conn: Connection,
                 reopen: Callable[[], Connection] | None = None) -> None:
        self._conn = conn
        self._reopen = reopen

    @property
    def conn(self) -> Connection:
        """The connection; one that a server restart broke is opened again (when the
        store knows how), so a caller's retry after an outage finds a working one."""
        if self._conn.closed and self._reopen is not None:
            self._conn = self._reopen()
        return self._conn

    @classmethod
    def open(cls, dsn: str, schema: str = "public") -> BlocklistStore:
        """Connect to ``dsn`` and work in ``schema`` (created if missing); raises
        :data:`OperationalError` when the server does not answer."""
        def connect() -> Connection:
            conn = psycopg2.connect(dsn)
            if schema != "public":
                with conn, conn.cursor() as cur:
                    cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                        sql.Identifier(schema)))
                    cur.execute("SELECT set_config('search_path', %s, false)", (schema,))
            return conn

        return cls(connect(), reopen=connect)

    def close(self) -> None:
        self._conn.close()

    def drop_schema(self, schema: str) -> None:
        """Drop a scratch schema and everything in it (benchmarks, tests). No undo."""
        if schema == "public":
            raise ValueError("refusing to drop the public schema")
        with self.conn, self.conn.cursor() as cur:
            cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))

    def __enter__(self) -> BlocklistStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def migrate(self) -> None:
        """Apply compose/sql/schema.sql (idempotent; concurrent callers take turns)."""
        with self.conn, self.conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            cur.execute(SCHEMA_PATH.read_text())
        log.debug("blocklist schema applied from %s", SCHEMA_PATH)

    def upsert(self, entries: builtins.list[NewEntry], actor: str) -> int:
        """Add or refresh entries in one statement; return how many rows were
        inserted or changed (each also gets one history row, 'add' or 'update').

        Duplicate keys in ``entries`` are collapsed first (see :func:`collapse`).
        An expired row is re-activated with the incoming values (its created_at is
        kept), and so is a revoked row listed again by a person (source ``manual``;
        automatic sources never undo a revocation); an active row keeps the higher
        score and the later expiry (NULL, never, wins). Re-sending what is stored
        changes nothing.
        """
        return self.upsert_many(entries, actor).changed

    def upsert_many(self, entries: builtins.list[NewEntry], actor: str) -> Upserted:
        """:meth:`upsert`, and which keys it refused: a person revoked them, and only a
        person (source ``manual``) lists them again."""
        rows = [(e.entity_type, e.entity_id, e.reason, e.source, float(e.score),
                 Json(e.evidence), e.ttl_seconds, actor) for e in collapse(entries)]
        if not rows:
            return Upserted(0, frozenset())
        with self.conn, self.conn.cursor() as cur:
            (changed, refused), = execute_values(cur, _UPSERT, rows, template=_UPSERT_TEMPLATE,
                                                 page_size=len(rows), fetch=True)
        return Upserted(int(changed), frozenset((t, i) for t, i in refused))

    def _write_many(self, statement: str, template: str,
                    rows: builtins.list[tuple[Any, ...]]) -> int:
        """One statement for all rows, in one transaction; the rows it RETURNs."""
        if not rows:
            return 0
        with self.conn, self.conn.cursor() as cur:
            returned = execute_values(cur, statement, rows, template=template,
                                      page_size=len(rows), fetch=True)
        return len(returned)

    def revoke(self, entity_type: str, entity_id: str, actor: str, reason: str) -> bool:
        """Revoke the active entry (history 'revoke'); False when none is active."""
        with self.conn, self.conn.cursor() as cur:
            cur.execute(_REVOKE, {"entity_type": entity_type, "entity_id": entity_id,
                                  "actor": actor, "reason": reason})
            return cur.fetchone() is not None

    def get(self, entity_type: str, entity_id: str) -> Entry | None:
        """The stored row, active or not; None when there is none."""
        with self.conn, self.conn.cursor() as cur:
            cur.execute(_GET, (entity_type, entity_id))
            row = cur.fetchone()
        return _entry(row) if row else None

    def history(self, entity_type: str, entity_id: str) -> builtins.list[dict[str, Any]]:
        """Every recorded change of one entity, oldest first: dicts with id, action
        ('add' | 'update' | 'revoke'), reason, source, score, evidence, expires_at,
        actor, at."""
        with self.conn, self.conn.cursor() as cur:
            cur.execute(_HISTORY, (entity_type, entity_id))
            names = [d[0] for d in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def list(self, entity_type: str | None = None, source: str | None = None,
             include_inactive: bool = False, limit: int = 100) -> builtins.list[Entry]:
        """Entries, most recently updated first; only active ones unless include_inactive."""
        with self.conn, self.conn.cursor() as cur:
            cur.execute(_LIST, {"entity_type": entity_type, "source": source,
                                "include_inactive": include_inactive, "limit": limit})
            return [_entry(row) for row in cur.fetchall()]

    def changed_since(self, watermark: datetime | None
                      ) -> tuple[builtins.list[Entry], datetime | None]:
        """Rows updated after ``watermark`` (all rows when None), oldest change first,
        and the next watermark (the newest updated_at seen, else ``watermark``).

        Rows up to :data:`WATERMARK_MARGIN` older than the watermark are read
        again, so a transaction that committed late is not missed; callers must
        treat re-reads as harmless (they are: each row is the current state).
        """
        since = None if watermark is None else watermark - WATERMARK_MARGIN
        with self.conn, self.conn.cursor() as cur:
            cur.execute(_CHANGED_SINCE, {"since": since})
            entries = [_entry(row) for row in cur.fetchall()]
        newest = max((e.updated_at for e in entries), default=watermark)
        if watermark is not None and newest is not None:
            newest = max(newest, watermark)
        return entries, newest

    def record_flagged(self, rows: builtins.list[FlaggedTransaction]) -> int:
        """Store flagged transactions; ones already stored are left as they are.
        Returns how many were inserted."""
        if not rows:
            return 0
        data = io.StringIO("".join(
            _csv_line((r.transaction_id, r.decision, float(r.score), json.dumps(r.reasons),
                       r.card_id, r.user_id, r.site_id, r.device_id, r.amount_minor,
                       r.currency, r.event_ms, r.decided_ms, r.country, r.ip_address,
                       r.merchant_category, r.card_present)) for r in rows))
        with self.conn, self.conn.cursor() as cur:
            cur.execute(_FLAGGED_SCRATCH)
            cur.copy_expert(_FLAGGED_COPY, data)
            cur.execute(_RECORD_FLAGGED)
            return len(cur.fetchall())

    def ungraphed(self, window_seconds: float, limit: int
                  ) -> builtins.list[FlaggedTransaction]:
        """Flagged transactions decided in the last ``window_seconds`` whose decision
        is not marked as on the graph (:meth:`mark_graphed`), oldest first, at most
        ``limit``."""
        with self.conn, self.conn.cursor() as cur:
            cur.execute(_UNGRAPHED, {"window": window_seconds, "limit": limit})
            return [FlaggedTransaction(*_flagged(row)) for row in cur]

    def mark_graphed(self, ids: builtins.list[str]) -> int:
        """Note that these flagged transactions' decisions are on the graph; returns
        how many were not noted before."""
        if not ids:
            return 0
        with self.conn, self.conn.cursor() as cur:
            cur.execute(_MARK_GRAPHED, {"ids": ids})
            return cur.rowcount

    def record_labels(self, rows: builtins.list[LabelRow]) -> int:
        """Insert or update labels (label, source, reported_at; ids only fill gaps).
        An older report never overwrites a newer one. Returns rows inserted or changed."""
        values = [(r.transaction_id, r.label, r.source, r.reported_at, r.card_id, r.user_id,
                   r.site_id) for r in rows]
        return self._write_many(_RECORD_LABELS, _LABELS_TEMPLATE, values)

    def fraud_reports(self, as_of_ms: int | None = None) -> dict[str, int]:
        """Transaction id -> first fraud report (ms), for the transactions whose labels,
        as reported by ``as_of_ms`` (None: now), say fraud: what the learned model's
        training as of that time may know, however the reports changed after it."""
        with self.conn, self.conn.cursor() as cur:
            cur.execute(_FRAUD_REPORTS, {"as_of": as_of_ms})
            return {str(tx): int(ms) for tx, ms in cur.fetchall()}

    def counts(self) -> dict[str, int]:
        """Row count of each table."""
        with self.conn, self.conn.cursor() as cur:
            cur.execute(_COUNTS)
            row = cur.fetchone()
        assert row is not None
        names = ("blocklist", "blocklist_history", "flagged_transactions", "fraud_labels")
        return {name: int(count) for name, count in zip(names, row, strict=True)}


def _flagged(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row of ``_UNGRAPHED`` as :class:`FlaggedTransaction`'s fields (reasons NULL: [])."""
    return (*row[:3], row[3] or [], *row[4:])


def _csv_line(values: tuple[Any, ...]) -> str:
    """One row for COPY ... (FORMAT csv): text quoted (so an empty string stays one),
    numbers bare, None an unquoted empty field (NULL)."""
    fields = []
    for value in values:
        if value is None:
            fields.append("")
        elif isinstance(value, str):
            fields.append('"' + value.replace('"', '""') + '"')
        else:
            fields.append(repr(value))
    return ",".join(fields) + "\n"


class BlocklistListener:
    """Hears committed blocklist changes of one schema (LISTEN on its own
    autocommit connection); :meth:`changed` reads what the server already sent,
    without a round trip, so the stream may ask every batch.

    While the connection is broken :meth:`changed` tries to open a new one at
    most once per ``retry_seconds`` and answers True after reconnecting
    (notifications sent in between are lost; the caller's poll catches up).
    """

    def __init__(self, connect: Callable[[], Connection], schema: str,
                 retry_seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._connect = connect
        self._schema = schema
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._conn: Connection | None = None
        self._last_try: float | None = None

    @classmethod
    def open(cls, dsn: str, schema: str = "public") -> BlocklistListener:
        """Listen for changes in ``schema``; connecting waits for the first :meth:`changed`."""
        def connect() -> Connection:
            conn = psycopg2.connect(dsn)
            try:
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
            except psycopg2.Error:
                conn.close()
                raise
            return conn
        return cls(connect, schema)

    def changed(self) -> bool:
        """True when a change of this schema committed since the last call (or the
        listener just reconnected); never raises for a server that is away."""
        if self._conn is None or self._conn.closed:
            now = self._clock()
            if self._last_try is not None and now - self._last_try < self._retry_seconds:
                return False
            self._last_try = now
            try:
                self._conn = self._connect()
            except psycopg2.Error:
                return False
            return True
        try:
            self._conn.poll()
        except psycopg2.Error:  # a broken connection, whatever the driver calls it
            self.close()
            return True
        notifies = self._conn.notifies
        mine = any(n.channel == CHANNEL and n.payload == self._schema for n in notifies)
        notifies.clear()
        return mine

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
