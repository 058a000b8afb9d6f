"""The ring sweep: fraud rings found in the graph at boundaries of event time.

Rings are swept as of multiples of ``rings.sweep_every`` (:mod:`detectors.rings`),
so a transaction sees the rings of the last boundary before its ``known`` time,
whatever the batching.  The loop calls :meth:`RingSweep.sweep` once the graph holds
the boundary's time (``fraudgraph.stream.graph_view``); new members are active in the
loop's cache at once (counting from when a transaction may see them) and handed to
the graph annotator, which marks them in Neo4j and blocklists them.
"""

from __future__ import annotations

import logging
from typing import Any

from detectors.blocklist import BlocklistCache, NewEntry
from detectors.config import DetectorConfig
from detectors.pipeline import SINCE
from detectors.rings import Ring, find_rings, last_boundary, next_boundary
from fraudgraph.stream.annotator import GraphAnnotator
from graph import detect

log = logging.getLogger(__name__)


class RingSweep:
    """Ring members known to the loop: user -> the first sweep boundary that shows them
    in a ring (``visible_ms``; a transaction whose ``known`` time reaches it sees it)."""

    def __init__(self, driver: Any, config: DetectorConfig, annotator: GraphAnnotator) -> None:
        self.driver, self.config, self.annotator = driver, config, annotator
        self.every_ms = config.rings.sweep_every_ms
        self.swept_ms = -1  # the boundary of the last sweep
        self.visible_ms: dict[str, int] = {}
        self.rings = 0  # rings found by the last sweep

    def sweep(self, at_ms: int, cache: BlocklistCache) -> None:
        """Sweep as of the last boundary at or before ``at_ms`` unless done already."""
        boundary = last_boundary(at_ms, self.every_ms)
        if not self.config.graph.enabled or boundary <= self.swept_ms:
            return
        rings_config = self.config.rings
        links = [link for link in detect.ring_links(self.driver, boundary,
                                                    "device" in rings_config.link_through)
                 if link[0] in rings_config.link_through]
        rings = find_rings(links, rings_config.min_users, rings_config.max_device_users)
        self.swept_ms, self.rings = boundary, len(rings)
        members, entries = self._members(rings, cache)
        if entries:
            cache.add_local(entries)
        self.annotator.record_rings(members, entries)
        log.debug("ring sweep as of %d: %d rings, %d new members", boundary, len(rings),
                  len(entries))

    def _members(self, rings: list[Ring], cache: BlocklistCache
                 ) -> tuple[list[dict[str, Any]], list[NewEntry]]:
        """Every member's marks, and a blocklist entry for each member new to the loop."""
        rings_config = self.config.rings
        lag_ms = self.config.graph.as_of_lag_ms
        members, entries = [], []
        for ring in rings:
            for user, since in zip(ring.users, ring.since_ms, strict=True):
                members.append({"id": user, "ring_id": ring.ring_id,
                                "ring_size": len(ring.users)})
                visible = next_boundary(since, self.every_ms)
                if user in self.visible_ms:  # known: a sweep never moves it later
                    self.visible_ms[user] = min(self.visible_ms[user], visible)
                    continue
                self.visible_ms[user] = visible
                if "user" in rings_config.flag and not cache.revoked("user", user):
                    entries.append(NewEntry(
                        "user", user, "fraud_ring", "cypher", 0.9,
                        {"ring_id": ring.ring_id, "ring_size": len(ring.users),
                         SINCE: visible + lag_ms},
                        self.config.blocklist.ttl_ms // 1000))
        return members, entries
