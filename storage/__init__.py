"""PostgreSQL: the only package that imports psycopg2.

``storage.postgres`` connects and provisions; ``storage.blocklist`` keeps the
blocklist, its history, flagged transactions and fraud labels (and hears their
changes); ``storage.models`` is the GNN's model registry and training lock; the
error classes below are what callers catch.
"""

from storage.postgres import InterfaceError, OperationalError, row_error, transient

__all__ = ["InterfaceError", "OperationalError", "row_error", "transient"]
