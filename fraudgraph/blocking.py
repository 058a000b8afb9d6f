"""The one way entities go on and off the blocklist, for every writer (the daemon,
the label worker, the ring sweep, the GNN, the CLI).

PostgreSQL is the record and is written first; then the ``blocked`` mark on the
entities' Neo4j nodes (at once, or handed to the daemon's worker so the stream
never waits on the projection's locks).  Every step is idempotent, so a caller
that retries after an outage repeats nothing harmful.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from detectors.blocklist import NewEntry
from graph import detect
from storage.blocklist import BlocklistStore

Marks = Callable[[list[NewEntry]], None]


class Blocker:
    """Blocklist writes: :meth:`block` and :meth:`unblock`.

    ``driver``: the Neo4j driver the marks are written with, at once; ``marks``
    instead hands them to someone else (the daemon's worker); neither: the graph
    is not marked (PostgreSQL alone).  The daemon's loop puts its own entries in its
    cache as it decides; what the worker blocks reaches that cache between batches.
    """

    def __init__(self, store: BlocklistStore, driver: Any = None, *,
                 marks: Marks | None = None) -> None:
        self.store, self.driver = store, driver
        self._marks = marks if marks is not None else self.mark

    def block(self, entries: list[NewEntry], actor: str) -> int:
        """Upsert ``entries`` (PostgreSQL), then mark their nodes; return how many rows
        the upsert inserted or changed.  Entities a person revoked stay revoked (only a
        ``manual`` entry lists them again): not marked."""
        if not entries:
            return 0
        upserted = self.store.upsert_many(entries, actor=actor)
        kept = [e for e in entries if e.key not in upserted.refused]
        if kept:
            self._marks(kept)
        return upserted.changed

    def mark(self, entries: list[NewEntry]) -> None:
        """Set ``blocked`` (with reason and source) on the entities' graph nodes."""
        if self.driver is not None and entries:
            detect.mark_blocked(self.driver, [(e.entity_type, e.entity_id, e.reason, e.source)
                                              for e in entries])

    def reconcile(self, chunk: int = 10_000) -> tuple[int, int]:
        """Make the graph's ``blocked`` marks match the active blocklist (PostgreSQL is
        the record): mark the active entries' nodes that lack the mark (a crash between
        the PostgreSQL write and the mark), clear the marks of nodes with no active
        entry (revoked or expired); return (marked, cleared).  The marks are read first:
        one set by another process after that is never taken for a stale one."""
        if self.driver is None:
            return 0, 0
        marked = set(detect.blocked_nodes(self.driver))
        active = {e.key: e for e in self.store.list(limit=2**31 - 1)}
        missing = [NewEntry(e.entity_type, e.entity_id, e.reason, e.source, e.score, {})
                   for key, e in active.items() if key not in marked]
        stale = [key for key in marked if key not in active]
        for start in range(0, len(missing), chunk):
            self.mark(missing[start:start + chunk])
        cleared = sum(detect.unmark_blocked(self.driver, stale[start:start + chunk])
                      for start in range(0, len(stale), chunk))
        return len(missing), cleared

    def unblock(self, entity_type: str, entity_id: str, actor: str,
                reason: str) -> tuple[bool, int]:
        """Revoke the active entry (its row and history stay) and clear the node's
        ``blocked`` mark; return (whether an entry was active, marks cleared)."""
        revoked = self.store.revoke(entity_type, entity_id, actor, reason)
        cleared = 0
        if self.driver is not None:
            cleared = detect.unmark_blocked(self.driver, [(entity_type, entity_id)])
        return revoked, cleared
