"""Integration fixtures: the real local stack, started (idempotently) once per session.

Nothing here skips: if a service cannot be started the tests error, in CI and locally.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator

import pytest
from psycopg2 import sql

from fraudgraph.settings import Settings, load_settings
from fraudgraph.stack import manager
from ingest import kafka
from storage import postgres as pg

# The tests choose the graph's detail mode themselves (the default, or `flagged` where a
# test says so), whatever a benchmark session exported; subprocesses inherit this.
os.environ.pop("FRAUDGRAPH_GRAPH_DETAIL", None)

log = logging.getLogger("tests.stack")


#: Topic prefix owned by tests; removed when the session ends so repeated runs against
#: the same data folder do not pile up topics.  Not "bench-": `fraudgraph bench` deletes
#: its own topics, and a soak running beside the tests must keep them.
SCRATCH_TOPICS = ("test-",)


@pytest.fixture(scope="session")
def stack() -> Iterator[Settings]:
    """Settings of the running default stack (secrets filled in)."""
    settings, statuses = manager.up(load_settings(), log.info)
    unhealthy = [s for s in statuses if s.health != "healthy"]
    assert not unhealthy, f"stack not healthy: {unhealthy}"
    yield settings
    scratch = [t for t in kafka.topic_names(settings.kafka.bootstrap)
               if t.startswith(SCRATCH_TOPICS)]
    kafka.delete_topics(settings.kafka.bootstrap, scratch)
    conn = pg.connect(settings.postgres.dsn())
    try:  # the daemon tests' own blocklist schemas
        with conn, conn.cursor() as cur:
            cur.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'test\\_daemon\\_%'")
            for (name,) in cur.fetchall():
                cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
    finally:
        conn.close()
    for path in (settings.data_dir / "checkpoints").glob("*--test-*"):  # on test topics
        path.unlink()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for this test's topics, groups, labels and tables."""
    return uuid.uuid4().hex[:10]
