"""Connections built from settings, with one clear error when a service is not there."""

from __future__ import annotations

from fraudgraph.errors import ServiceUnavailable
from fraudgraph.settings import Settings, require_secret
from graph import driver as neo4j_driver
from storage import OperationalError
from storage import models as registry
from storage.blocklist import BlocklistListener, BlocklistStore


def neo4j(settings: Settings, retry_seconds: float = 30.0) -> neo4j_driver.Driver:
    """A verified driver for the configured Neo4j (the caller closes it).

    ``retry_seconds``: how long the driver itself retries a transaction that failed
    for a transient reason (a deadlock, a lost connection) before raising; a service
    loop with its own backoff and health reporting passes a few seconds."""
    n = settings.neo4j
    driver = neo4j_driver.connect(n.uri, n.user,
                                  require_secret(n.password, "FRAUDGRAPH_NEO4J_PASSWORD"),
                                  max_transaction_retry_time=retry_seconds)
    try:
        driver.verify_connectivity()
    except (neo4j_driver.ServiceUnavailable, neo4j_driver.AuthError) as exc:
        driver.close()
        raise ServiceUnavailable(f"neo4j at {n.uri} does not answer ({type(exc).__name__}); "
                                 "run `fraudgraph stack up`") from None
    return driver


def blocklist(settings: Settings) -> BlocklistStore:
    """An open store with the schema applied (the caller closes it).

    Raises ServiceUnavailable, one line, when PostgreSQL does not answer.
    """
    where = (f"127.0.0.1:{settings.postgres.port}" if settings.postgres.managed
             else "FRAUDGRAPH_POSTGRES_DSN")
    try:
        store = BlocklistStore.open(settings.postgres.dsn(), settings.postgres.schema)
    except OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ServiceUnavailable(f"postgresql at {where} cannot be reached ({reason}); "
                                 "run `fraudgraph stack up`") from None
    try:
        store.migrate()
    except BaseException:
        store.close()
        raise
    return store


def blocklist_listener(settings: Settings) -> BlocklistListener:
    """Hears committed blocklist changes of this profile's schema (connects lazily)."""
    return BlocklistListener.open(settings.postgres.dsn(), settings.postgres.schema)


def registered_models(settings: Settings, table: str, limit: int) -> list[registry.ModelRow]:
    """The models of a registry table (``storage.models.GNN`` or ``RISK``), newest first."""
    store = blocklist(settings)
    try:
        return registry.models(store.conn, limit, table)
    finally:
        store.close()
