"""The PostgreSQL blocklist: entries, their history, flagged transactions, fraud labels.

One row per ``(entity_type, entity_id)``; every write is an ``ON CONFLICT``
upsert, so replays after an at-least-once redelivery change nothing. The
stream never queries per transaction: :class:`BlocklistCache` holds the active
entries in process and polls :meth:`BlocklistStore.changed_since` at most once
per ``refresh_seconds``, and at once when :class:`BlocklistListener` hears that
a change committed (a trigger notifies on every write).

An entry is *active* at ``now`` when it is not revoked and its ``expires_at``
is NULL (never) or later than ``now``.
"""

from __future__ import annotations

import builtins
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection as Connection
from psycopg2.extras import Json, execute_values

log = logging.getLogger(__name__)

OperationalError = psycopg2.OperationalError
InterfaceError = psycopg2.InterfaceError  # e.g. "connection already closed"

ENTITY_TYPES = ("card", "user", "device", "site", "ip")
SOURCES = ("rule", "cypher", "gnn", "label", "manual")
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "compose" / "sql" / "schema.sql"
#: changed_since() re-reads rows this much older than the watermark: a transaction
#: stamps updated_at with its start time and may commit after a reader moved past it.
WATERMARK_MARGIN = timedelta(seconds=5)
CHANNEL = "fraudgraph_blocklist"  # schema.sql's trigger notifies here; payload: schema
_SCHEMA_LOCK = 7_244_318_001  # pg_advisory_xact_lock key: one migrate() at a time

Key = tuple[str, str]


@dataclass(frozen=True)
class NewEntry:
    """An entity to put on the blocklist; ``ttl_seconds=None`` never expires."""

    entity_type: str
    entity_id: str
    reason: str
    source: str
    score: float
    evidence: dict[str, Any]
    ttl_seconds: int | None = None

    def __post_init__(self) -> None:
        if self.entity_type not in ENTITY_TYPES:
            raise ValueError(f"entity_type {self.entity_type!r} is not one of {ENTITY_TYPES}")
        if self.source not in SOURCES:
            raise ValueError(f"source {self.source!r} is not one of {SOURCES}")
        if self.ttl_seconds is not None and self.ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be positive or None, not {self.ttl_seconds}")

    @property
    def key(self) -> Key:
        return (self.entity_type, self.entity_id)


@dataclass(frozen=True)
class Entry:
    """A blocklist row as stored (timestamps are timezone-aware)."""

    entity_type: str
    entity_id: str
    reason: str
    source: str
    score: float
    evidence: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None

    @property
    def key(self) -> Key:
        return (self.entity_type, self.entity_id)

    def active_at(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True)
class FlaggedTransaction:
    """A transaction decided ``review`` or ``block``, kept for reporting."""

    transaction_id: str
    decision: str
    score: float
    reasons: list[dict[str, Any]]
    card_id: str | None
    user_id: str | None
    site_id: str | None
    device_id: str | None
    amount_minor: int | None
    currency: str | None
    event_ms: int
    decided_ms: int


@dataclass(frozen=True)
class LabelRow:
    """Late feedback on a transaction; ``reported_at`` is ISO 8601 (with an offset)."""

    transaction_id: str
    label: str
    source: str
    reported_at: str
    card_id: str | None = None
    user_id: str | None = None
    site_id: str | None = None


EntryLoader = Callable[[datetime | None], tuple[list[Entry], datetime | None]]


def since_of(evidence: dict[str, Any]) -> float:
    """The event time from which an entry counts (``since_ms``; none: always)."""
    since = evidence.get("since_ms")
    return float("-inf") if since is None else float(since)


def wins(new_since: float, new_score: float, old_since: float, old_score: float) -> bool:
    """Whether an incoming entry's reason, source and evidence replace an active one's:
    the entry that counts earliest wins (so arrival order never changes what a
    transaction sees), the higher score on equal times."""
    return new_since < old_since or (new_since == old_since and new_score > old_score)


def collapse(entries: Iterable[NewEntry]) -> list[NewEntry]:
    """One entry per key: the one that counts earliest wins (:func:`wins`; the first on
    ties), with the highest score of them; a TTL of None (never) beats any TTL,
    otherwise the longest TTL is kept. Order of first appearance is preserved."""
    merged: dict[Key, NewEntry] = {}
    for entry in entries:
        old = merged.get(entry.key)
        if old is None:
            merged[entry.key] = entry
            continue
        winner = entry if wins(since_of(entry.evidence), entry.score,
                               since_of(old.evidence), old.score) else old
        ttl = (None if old.ttl_seconds is None or entry.ttl_seconds is None
               else max(old.ttl_seconds, entry.ttl_seconds))
        merged[entry.key] = dataclasses.replace(winner, ttl_seconds=ttl,
                                                score=max(old.score, entry.score))
    return builtins.list(merged.values())


# -- SQL (parameters only; execute_values fills the single VALUES %s) ----------

# A row is re-activated (takes the incoming values) when it is revoked or expired;
# an active row keeps the higher score (with its reason, source and evidence) and
# the later expiry (NULL: never). A replay that changes nothing touches no row.
_UPSERT = """
WITH incoming (entity_type, entity_id, reason, source, score, evidence, ttl_seconds, actor) AS (
    VALUES %s
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
    WHERE {takes} OR EXCLUDED.score > b.score
       OR (b.expires_at IS NOT NULL
           AND (EXCLUDED.expires_at IS NULL OR EXCLUDED.expires_at > b.expires_at))
    RETURNING b.entity_type, b.entity_id, b.reason, b.source, b.score, b.evidence,
              b.expires_at, (b.xmax = 0) AS inserted
)
INSERT INTO blocklist_history (entity_type, entity_id, action, reason, source, score,
                               evidence, expires_at, actor)
SELECT u.entity_type, u.entity_id, CASE WHEN u.inserted THEN 'add' ELSE 'update' END,
       u.reason, u.source, u.score, u.evidence, u.expires_at, i.actor
FROM upserted u JOIN incoming i USING (entity_type, entity_id)
RETURNING action
""".format(
    inactive="(b.revoked_at IS NOT NULL OR coalesce(b.expires_at <= now(), false))",
    # the incoming entry takes over the row's reason, source and evidence (see wins())
    takes="(b.revoked_at IS NOT NULL OR coalesce(b.expires_at <= now(), false)"
          " OR (-coalesce((EXCLUDED.evidence->>'since_ms')::float8, '-Infinity'),"
          " EXCLUDED.score) > (-coalesce((b.evidence->>'since_ms')::float8, '-Infinity'),"
          " b.score))")
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

_RECORD_FLAGGED = """
INSERT INTO flagged_transactions (transaction_id, decision, score, reasons, card_id, user_id,
                                  site_id, device_id, amount_minor, currency, event_time,
                                  decided_at)
VALUES %s
ON CONFLICT (transaction_id) DO NOTHING
RETURNING transaction_id
"""
_FLAGGED_TEMPLATE = ("(%s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s, "
                     "to_timestamp(%s::bigint / 1000.0), to_timestamp(%s::bigint / 1000.0))")

# Within one call the latest report per transaction wins; across calls an older
# report never overwrites a newer one, and a replay changes nothing.
_RECORD_LABELS = """
WITH incoming (transaction_id, label, source, reported_at, card_id, user_id, site_id) AS (
    VALUES %s
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
        A revoked or expired row is re-activated with the incoming values (its
        created_at is kept); an active row keeps the higher score and the later
        expiry (NULL, never, wins). Re-sending what is stored changes nothing.
        """
        rows = [(e.entity_type, e.entity_id, e.reason, e.source, float(e.score),
                 Json(e.evidence), e.ttl_seconds, actor) for e in collapse(entries)]
        return self._write_many(_UPSERT, _UPSERT_TEMPLATE, rows)

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
        values = [(r.transaction_id, r.decision, float(r.score), Json(r.reasons), r.card_id,
                   r.user_id, r.site_id, r.device_id, r.amount_minor, r.currency, r.event_ms,
                   r.decided_ms) for r in rows]
        return self._write_many(_RECORD_FLAGGED, _FLAGGED_TEMPLATE, values)

    def record_labels(self, rows: builtins.list[LabelRow]) -> int:
        """Insert or update labels (label, source, reported_at; ids only fill gaps).
        An older report never overwrites a newer one. Returns rows inserted or changed."""
        values = [(r.transaction_id, r.label, r.source, r.reported_at, r.card_id, r.user_id,
                   r.site_id) for r in rows]
        return self._write_many(_RECORD_LABELS, _LABELS_TEMPLATE, values)

    def counts(self) -> dict[str, int]:
        """Row count of each table."""
        with self.conn, self.conn.cursor() as cur:
            cur.execute(_COUNTS)
            row = cur.fetchone()
        assert row is not None
        names = ("blocklist", "blocklist_history", "flagged_transactions", "fraud_labels")
        return {name: int(count) for name, count in zip(names, row, strict=True)}


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


class BlocklistCache:
    """The active blocklist entries, in process; no database access of its own.

    ``store_loader`` is :meth:`BlocklistStore.changed_since` (or a fake): it gets
    the last watermark and returns the rows changed since then and the next
    watermark. :meth:`refresh` calls it at most once per ``refresh_seconds``, so
    the stream costs about one query a second, never one per transaction.

    Among states of one key the newest ``updated_at`` wins, so a row loaded from
    before a local add (whose database write may still be in flight) does not
    undo it; this assumes the database and this process share a clock (same
    host or NTP). A later revoke or expiry removes the entry.
    """

    def __init__(self, store_loader: EntryLoader, refresh_seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 changed: Callable[[], bool] = lambda: False) -> None:
        self._load = store_loader
        self._changed = changed
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._now = now
        self._entries: dict[Key, Entry] = {}
        self._watermark: datetime | None = None
        self._last_refresh: float | None = None
        self._notified = False  # a change was heard and not loaded yet

    @property
    def watermark(self) -> datetime | None:
        return self._watermark

    def due(self) -> bool:
        """Whether :meth:`refresh` would query now (a change was notified, or
        ``refresh_seconds`` passed); a caller that reports on the store's health asks
        this first, since a throttled refresh proves nothing about the store."""
        self._notified = self._notified or self._changed()
        return (self._notified or self._last_refresh is None
                or self._clock() - self._last_refresh >= self.refresh_seconds)

    def refresh(self, force: bool = False) -> int:
        """Apply the rows changed since the last refresh; return how many were loaded.

        Returns 0 without calling the loader when less than ``refresh_seconds``
        passed since the previous call, unless ``force`` or ``changed()``. A
        loader error propagates; the next attempt is throttled all the same.
        """
        started = self._clock()
        if not force and not self.due():
            return 0
        self._last_refresh, self._notified = started, False
        # a failed load is retried at the next poll (refresh_seconds): the watermark
        # is unchanged, so nothing committed in between is missed
        entries, self._watermark = self._load(self._watermark)
        now = self._now()
        for entry in entries:
            cached = self._entries.get(entry.key)
            if cached is not None and entry.updated_at < cached.updated_at:
                continue  # an older state than what this process already holds
            if entry.active_at(now):
                self._entries[entry.key] = entry
            elif cached is not None:
                del self._entries[entry.key]
        for key in [k for k, e in self._entries.items() if not e.active_at(now)]:
            del self._entries[key]
        return len(entries)

    def add_local(self, entries: builtins.list[NewEntry]) -> None:
        """Make ``entries`` active in this process at once (merged with a cached
        entry like :meth:`BlocklistStore.upsert` merges rows)."""
        now = self._now()
        for new in entries:
            expires = None if new.ttl_seconds is None else now + timedelta(seconds=new.ttl_seconds)
            old = self._entries.get(new.key)
            if old is None or not old.active_at(now):
                self._entries[new.key] = Entry(
                    new.entity_type, new.entity_id, new.reason, new.source, float(new.score),
                    new.evidence, now, now, expires, None, None)
                continue
            winner_is_new = wins(since_of(new.evidence), new.score, since_of(old.evidence),
                                 old.score)
            self._entries[new.key] = dataclasses.replace(
                old,
                reason=new.reason if winner_is_new else old.reason,
                source=new.source if winner_is_new else old.source,
                evidence=new.evidence if winner_is_new else old.evidence,
                score=max(old.score, float(new.score)),
                expires_at=(None if old.expires_at is None or expires is None
                            else max(old.expires_at, expires)),
                updated_at=now)

    def hit(self, entity_type: str, entity_id: str) -> Entry | None:
        """The active entry for this entity, or None (expiry is checked now)."""
        entry = self._entries.get((entity_type, entity_id))
        if entry is None:
            return None
        if not entry.active_at(self._now()):
            del self._entries[(entity_type, entity_id)]
            return None
        return entry

    @property
    def size(self) -> int:
        """Entries held, without an expiry check (expired ones go at the next refresh);
        O(1), for a gauge updated every batch."""
        return len(self._entries)

    def __len__(self) -> int:
        now = self._now()
        return sum(1 for entry in self._entries.values() if entry.active_at(now))
