"""Fraud rings: connected groups of users linked through shared cards or devices (pure).

The sweep reads the links as of a time (``cypher/ring_links.cypher``: each card
or device with its users and when each was first seen on it) and replays them in
time order through a union-find, so it knows not only which users form groups of
at least ``min_users`` but **since when** each member is in one.  Components only
grow, so "in a ring as of t" is ``since <= t`` whenever the sweep ran later: a
decision reads the same ring whatever time the sweep happened to run.

A device links only its first ``max_device_users`` users (by first seen): busier
devices are kiosks, shared office machines or farms, which the shared-device
check covers, and "the first k" stays the same however late one looks (dropping
a device once it grows busy would change the past).

A ring's id is derived from its smallest member id, so the same ring keeps its id
from one sweep to the next (until two rings merge).
"""

from __future__ import annotations

from dataclasses import dataclass

#: (via: "card" | "device", through: its id, [(user id, first seen ms)])
Link = tuple[str, str, list[tuple[str, int]]]


@dataclass(frozen=True)
class Ring:
    ring_id: str
    users: tuple[str, ...]
    links: tuple[str, ...]  # "card:<id>" / "device:<id>" the members share
    since_ms: tuple[int, ...]  # per member (aligned with ``users``): in a ring since


def find_rings(links: list[Link], min_users: int, max_device_users: int = 10) -> list[Ring]:
    """The rings among ``links``, each member with the time it joined a ring."""
    edges: list[tuple[int, str, str]] = []
    for via, through, seen in links:
        first = sorted(seen, key=lambda u: (u[1], u[0]))
        if via == "device":
            first = first[:max_device_users]
        edges.extend((ms, f"{via}:{through}", user) for user, ms in first)
    parent: dict[str, str] = {}
    members: dict[str, list[str]] = {}  # root -> its users
    since: dict[str, int] = {}

    def root(node: str) -> str:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for ms, hub, user in sorted(edges):
        key = "u:" + user
        if key not in parent:
            members[key] = [user]
        a, b = root(hub), root(key)
        if a == b:
            continue
        if len(members.get(a, ())) < len(members.get(b, ())):
            a, b = b, a
        parent[b] = a
        joining = members.pop(b, [])
        was_ring = len(members.setdefault(a, [])) >= min_users
        members[a].extend(joining)
        if len(members[a]) >= min_users:  # all of them on crossing, else the newcomers
            for member in (joining if was_ring else members[a]):
                since.setdefault(member, ms)
    hubs: dict[str, set[str]] = {}
    for _, hub, _ in edges:
        hubs.setdefault(root(hub), set()).add(hub)
    rings = []
    for top, users in members.items():
        if len(users) >= min_users:
            names = tuple(sorted(users))
            rings.append(Ring(f"ring-{names[0]}", names, tuple(sorted(hubs[top])),
                              tuple(since[u] for u in names)))
    return sorted(rings, key=lambda r: r.ring_id)


def next_boundary(ms: int, every_ms: int) -> int:
    """The first sweep boundary (a multiple of ``every_ms``) at or after ``ms``."""
    return -(-ms // every_ms) * every_ms


def last_boundary(ms: int, every_ms: int) -> int:
    """The last sweep boundary at or before ``ms``."""
    return ms // every_ms * every_ms
