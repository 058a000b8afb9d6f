"""The entity vocabulary, defined once: what the blocklist, the config, the graph and
the GNN call the things a transaction touches."""

from __future__ import annotations

#: every entity type the blocklist, the config and the CLI know (lower case)
ENTITY_TYPES = ("card", "user", "device", "site", "ip")
#: the graph's node label of each entity type
NODE_LABEL = {"card": "Card", "user": "User", "device": "Device", "site": "Site",
              "ip": "IP"}
#: and back: the entity type of a node label
ENTITY_TYPE = {label: entity for entity, label in NODE_LABEL.items()}
#: the entity types the GNN scores
SCORED = ("card", "user", "device")
#: who put an entry on the blocklist
SOURCES = ("rule", "cypher", "gnn", "label", "manual")
