"""The graph as the projection tests observe it (a test helper: the product reads
the graph through ``graph.detect`` and ``gnn.dataset``).

* :func:`entity_features`: the library's ``features_*`` queries for a set of entities;
* :func:`export_networkx` and :func:`to_arrays`: the aggregate graph as a
  networkx ``MultiDiGraph`` (compared with the oracle) and as index arrays.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

import cypher
from graph.driver import Driver

FEATURE_QUERIES = {"cards": "features_cards", "devices": "features_devices",
                   "users": "features_users", "sites": "features_sites"}


def entity_features(driver: Driver, database: str = "neo4j",
                    **ids: Iterable[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """``entity_features(driver, cards=[...], devices=[...])`` → ``{"cards": {id: {...}}}``.

    Entities not in the graph are absent from the result.
    """
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for kind, values in ids.items():
        unique = sorted(set(values))
        if kind not in FEATURE_QUERIES:
            raise ValueError(f"unknown entity kind {kind!r}; known: {sorted(FEATURE_QUERIES)}")
        records, _, _ = driver.execute_query(cypher.load(FEATURE_QUERIES[kind]), ids=unique,
                                             database_=database)
        result[kind] = {r["id"]: {k: v for k, v in r.items() if k != "id"} for r in records}
    return result


def export_networkx(driver: Driver, database: str = "neo4j") -> nx.MultiDiGraph:
    """The aggregate graph: nodes ``(label, id)`` with ``label``, edges keyed by type."""
    graph = nx.MultiDiGraph()
    records, _, _ = driver.execute_query(cypher.load("export_relationships"),
                                         database_=database)
    for r in records:
        a, b = (r["a_label"], r["a"]), (r["b_label"], r["b"])
        graph.add_node(a, label=r["a_label"])
        graph.add_node(b, label=r["b_label"])
        graph.add_edge(a, b, key=r["type"], count=r["count"],
                       amount_minor_sum=r["amount_minor_sum"],
                       first_seen_ms=r["first_seen_ms"], last_seen_ms=r["last_seen_ms"],
                       fraud_count=r["fraud_count"])
    return graph


@dataclass
class GraphArrays:
    """Index form for PyG ``HeteroData``: ``node_ids[label][i]`` is node i's id."""

    node_ids: dict[str, list[str]] = field(default_factory=dict)
    index: dict[str, dict[str, int]] = field(default_factory=dict)
    edge_index: dict[tuple[str, str, str], tuple[list[int], list[int]]] = field(
        default_factory=dict)
    edge_count: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)


def to_arrays(graph: nx.MultiDiGraph) -> GraphArrays:
    """Id→index maps (ids sorted, so deterministic) and edge index lists per relation."""
    arrays = GraphArrays()
    by_label: dict[str, list[str]] = {}
    for label, node_id in graph.nodes:
        by_label.setdefault(label, []).append(node_id)
    for label, ids in sorted(by_label.items()):
        arrays.node_ids[label] = sorted(ids)
        arrays.index[label] = {node_id: i for i, node_id in enumerate(arrays.node_ids[label])}
    for (a_label, a), (b_label, b), rel, data in sorted(graph.edges(keys=True, data=True)):
        key = (a_label, rel, b_label)
        src, dst = arrays.edge_index.setdefault(key, ([], []))
        src.append(arrays.index[a_label][a])
        dst.append(arrays.index[b_label][b])
        arrays.edge_count.setdefault(key, []).append(data["count"])
    return arrays
