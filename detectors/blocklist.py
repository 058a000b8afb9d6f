"""The blocklist's domain: entries, how two entries for one entity merge, and the
in-process cache the stream checks on every transaction.  No database here: the
PostgreSQL store (``storage.blocklist``) keeps the rows, and the cache polls it
through a loader function at most once per ``refresh_seconds``.

An entry is *active* at ``now`` when it is not revoked and its ``expires_at``
is NULL (never) or later than ``now``.
"""

from __future__ import annotations

import builtins
import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from detectors.entities import ENTITY_TYPES, SOURCES

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
    country: str | None = None
    ip_address: str | None = None
    merchant_category: str | None = None
    card_present: bool | None = None


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
        #: revoked by a person: no automatic source lists them again (the store agrees)
        self._revoked: set[Key] = set()

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
            if entry.revoked_at is not None:  # a person's revocation beats any local add,
                if (cached is not None and cached.source == "manual"  # but a person's own
                        and entry.updated_at < cached.updated_at):  # re-listing since
                    continue
                self._revoked.add(entry.key)
                self._entries.pop(entry.key, None)
                continue
            if cached is not None and entry.updated_at < cached.updated_at:
                continue  # an older state than what this process already holds
            self._revoked.discard(entry.key)
            if entry.active_at(now):
                self._entries[entry.key] = entry
            elif cached is not None:
                del self._entries[entry.key]
        for key in [k for k, e in self._entries.items() if not e.active_at(now)]:
            del self._entries[key]
        return len(entries)

    def add_local(self, entries: builtins.list[NewEntry]) -> None:
        """Make ``entries`` active in this process at once (merged with a cached
        entry like :meth:`BlocklistStore.upsert` merges rows).  An entity a person
        revoked is left out unless the entry is a person's (source ``manual``)."""
        now = self._now()
        for new in entries:
            if new.key in self._revoked:
                if new.source != "manual":
                    continue
                self._revoked.discard(new.key)
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

    def revoked(self, entity_type: str, entity_id: str) -> bool:
        """Whether a person revoked this entity's entry (automatic sources leave it)."""
        return (entity_type, entity_id) in self._revoked

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
