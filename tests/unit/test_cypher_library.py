"""Every .cypher file documents itself, and queries are never built from strings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import cypher

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("fraudgraph", "ingest", "graph", "detectors", "cypher", "gnn")


@pytest.mark.parametrize("name", cypher.names())
def test_header_is_complete_and_matches_the_body(name: str) -> None:
    q = cypher.query(name)
    assert q.purpose and q.body
    assert {p.name for p in q.params} == q.used_params, "declared and used parameters differ"
    for p in q.params:
        assert p.type and (p.default is None or cypher.bind(q, {
            other.name: "1" if other.type.startswith(("integer", "float"))
            else '["x"]' if other.type.startswith("list") else "x"
            for other in q.params if other.default is None}))
    if not q.writes:
        assert q.returns, "a read query names its returned columns"


def test_no_query_is_built_from_strings() -> None:
    """Cypher lives in cypher/*.cypher; Neo4j calls never get f-strings, .format() or
    concatenation (SQL composes identifiers with psycopg2.sql only)."""
    built = re.compile(r"""(\.run|execute_query)\(\s*(f["']|[^,)]*\.format\(|[^,)]*\+)""")
    inline = re.compile(r"""["'](OPTIONAL MATCH|MATCH|MERGE|CREATE) \(""")  # Cypher patterns
    assert built.search('driver.execute_query(f"MATCH (n {{id: {x}}})")')  # the lint bites
    assert built.search("session.run(QUERY + where)") and inline.search('"MATCH (n) RETURN n"')
    offenders = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            offenders += [f"{path.name}: {m.group(0)}" for m in built.finditer(text)]
            offenders += [f"{path.name}: inline {m.group(0)}" for m in inline.finditer(text)]
    assert offenders == []


def test_bind_types_defaults_and_errors() -> None:
    q = cypher.query("shared_devices")
    assert cypher.bind(q, {}) == {"min_cards": 3, "limit": 25}
    assert cypher.bind(q, {"min_cards": "5"}) == {"min_cards": 5, "limit": 25}
    with pytest.raises(cypher.ParamError, match=r"min_cards must be integer \(got 'five'\)"):
        cypher.bind(q, {"min_cards": "five"})
    with pytest.raises(cypher.ParamError, match="has no parameter 'min_card'"):
        cypher.bind(q, {"min_card": "5"})
    with pytest.raises(cypher.ParamError, match="needs --param user_id=<string>"):
        cypher.bind(cypher.query("ring_of"), {})
    ids = cypher.bind(cypher.query("detect_cards"), {"ids": '["a", "b"]', "known_ms": "7"})
    assert ids == {"ids": ["a", "b"], "known_ms": 7, "min_risk": 0.5}  # the default filled in
    with pytest.raises(cypher.ParamError, match="ids must be list<string>"):
        cypher.bind(cypher.query("detect_cards"), {"ids": "a", "known_ms": "7"})


def test_broken_headers_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bad.cypher").write_text("// name: bad\n// purpose: x\nRETURN 1 AS one\n")
    monkeypatch.setattr(cypher, "LIBRARY", tmp_path)
    cypher.load.cache_clear()
    try:
        with pytest.raises(cypher.HeaderError, match=r"bad.cypher: header line `// params"):
            cypher.query("bad")
    finally:
        cypher.load.cache_clear()
