"""PostgreSQL: SQL round trip as the fraudgraph role; default credentials rejected."""

from __future__ import annotations

import pytest

from fraudgraph.settings import Settings
from storage import postgres as store


def test_sql_round_trip_as_fraudgraph_role(stack: Settings) -> None:
    conn = store.connect(stack.postgres.dsn())
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_user, current_database()")
            assert cur.fetchone() == ("fraudgraph", "fraudgraph")
            cur.execute("CREATE TEMP TABLE roundtrip (id text PRIMARY KEY, amount numeric)")
            cur.executemany("INSERT INTO roundtrip VALUES (%s, %s) ON CONFLICT (id) DO NOTHING",
                            [("a", 1.5), ("b", 2.25), ("a", 99)])
            cur.execute("SELECT id, amount FROM roundtrip ORDER BY id")
            assert [(r[0], float(r[1])) for r in cur.fetchall()] == [("a", 1.5), ("b", 2.25)]
        conn.commit()
    finally:
        conn.close()


@pytest.mark.parametrize(("user", "password"), [
    ("fraudgraph", "wrong-password"), ("postgres", "postgres"), ("postgres", "")])
def test_wrong_or_default_credentials_are_rejected(stack: Settings, user: str,
                                                   password: str) -> None:
    dsn = (f"host=127.0.0.1 port={stack.postgres.port} dbname=postgres user={user} "
           f"password='{password}' connect_timeout=5")
    with pytest.raises(store.OperationalError, match=r"authentication failed|no password"):
        store.ping(dsn)
