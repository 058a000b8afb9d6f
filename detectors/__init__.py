"""The decision domain, pure: rules and their state, graph checks on facts read
elsewhere, rings, the combiner, the blocklist's entries and in-process cache, the
entity vocabulary, the config and its presets, quality metrics.

No database, broker or model library here (`lint-imports` checks it): the
PostgreSQL store is in storage/, the graph reads in graph/.
"""
