"""Fraud rings: connected groups of users linked through shared cards or devices (pure).

The sweep reads the links from Neo4j (``cypher/ring_links.cypher``), finds the
connected components with networkx and keeps those with at least
``min_users`` users.  A ring's id is derived from its smallest member id, so
the same ring keeps its id from one sweep to the next.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx


@dataclass(frozen=True)
class Ring:
    ring_id: str
    users: tuple[str, ...]
    links: tuple[str, ...]  # "card:<id>" / "device:<id>" the members share


def find_rings(links: list[tuple[str, str, list[str]]], min_users: int) -> list[Ring]:
    graph = nx.Graph()
    for via, through, users in links:
        hub = ("link", f"{via}:{through}")
        for user in users:
            graph.add_edge(hub, ("user", user))
    rings = []
    for component in nx.connected_components(graph):
        members = tuple(sorted(n[1] for n in component if n[0] == "user"))
        if len(members) >= min_users:
            shared = tuple(sorted(n[1] for n in component if n[0] == "link"))
            rings.append(Ring(f"ring-{members[0]}", members, shared))
    return sorted(rings, key=lambda r: r.ring_id)
