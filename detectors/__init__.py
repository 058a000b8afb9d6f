"""Pure streaming rules, Cypher-backed detectors, decision, blocklist store.

psycopg2 is imported only by the PostgreSQL store (detectors.store).
"""
