"""Neo4j: Bolt with auth (and rejection of wrong/default passwords), HTTP and Browser."""

from __future__ import annotations

import json
import urllib.request

import pytest

from fraudgraph.settings import Settings
from graph import driver as neo4j_driver


def test_create_and_read_nodes_over_bolt_with_auth(stack: Settings, unique: str) -> None:
    label_value = f"test-{unique}"
    assert stack.neo4j.password is not None
    with neo4j_driver.connect(stack.neo4j.uri, stack.neo4j.user, stack.neo4j.password) as drv:
        drv.execute_query(
            "UNWIND range(1, 5) AS i CREATE (:TestNode {run: $run, i: i})", run=label_value)
        records, _, _ = drv.execute_query(
            "MATCH (n:TestNode {run: $run}) RETURN count(n) AS n, sum(n.i) AS total",
            run=label_value)
        assert (records[0]["n"], records[0]["total"]) == (5, 15)
        drv.execute_query("MATCH (n:TestNode {run: $run}) DELETE n", run=label_value)
        records, _, _ = drv.execute_query(
            "MATCH (n:TestNode {run: $run}) RETURN count(n) AS n", run=label_value)
        assert records[0]["n"] == 0


@pytest.mark.parametrize("password", ["wrong-password-123", "neo4j"])
def test_wrong_or_default_password_is_rejected(stack: Settings, password: str) -> None:
    with pytest.raises(neo4j_driver.AuthError):
        neo4j_driver.ping(stack.neo4j.uri, "neo4j", password)


def test_http_discovery_reports_community_5_26(stack: Settings) -> None:
    with urllib.request.urlopen(stack.neo4j.http_url + "/", timeout=10) as response:
        discovery = json.load(response)
    assert discovery["neo4j_edition"] == "community"
    assert discovery["neo4j_version"].startswith("5.26.")
    assert discovery["bolt_direct"] == f"bolt://127.0.0.1:{stack.neo4j.bolt_port}"


def test_browser_is_served(stack: Settings) -> None:
    with urllib.request.urlopen(stack.neo4j.http_url + "/browser/", timeout=10) as response:
        assert response.status == 200
        assert response.headers.get_content_type() == "text/html"
        html = response.read().decode()
    assert "<title>Neo4j Browser</title>" in html
