"""Connections built from settings, with one clear error when a service is not there."""

from __future__ import annotations

from fraudgraph.errors import ServiceUnavailable
from fraudgraph.settings import Settings, require_secret
from graph import driver as neo4j_driver


def neo4j(settings: Settings) -> neo4j_driver.Driver:
    """A verified driver for the configured Neo4j (the caller closes it)."""
    n = settings.neo4j
    driver = neo4j_driver.connect(n.uri, n.user,
                                  require_secret(n.password, "FRAUDGRAPH_NEO4J_PASSWORD"))
    try:
        driver.verify_connectivity()
    except (neo4j_driver.ServiceUnavailable, neo4j_driver.AuthError) as exc:
        driver.close()
        raise ServiceUnavailable(f"neo4j at {n.uri} does not answer ({type(exc).__name__}); "
                                 "run `fraudgraph stack up`") from None
    return driver
