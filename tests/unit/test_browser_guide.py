"""The Browser guide is generated from the Cypher library and cannot drift from it; the
graph style parses the way Neo4j Browser parses GraSS; the guide server serves both."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest

import cypher
from fraudgraph import browser
from fraudgraph.stack import RECIPES

FRAUDGRAPH = str(Path(sys.executable).parent / "fraudgraph")
PARAM_LINE = re.compile(r":param (\w+) => (.+)")
GRAPH_LABELS = ("User", "Card", "Device", "IP", "Site", "Transaction")
WORKFLOW = ("top_risk", "shared_devices", "users_sharing", "fraud_rings", "ring_of",
            "neighbourhood", "card_transactions", "explain_decision", "shortest_path",
            "near_known_fraud", "compromised_sites")


class Guide(HTMLParser):
    """Slides, their titles and their runnable blocks (text as Browser reads it)."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.slides = 0
        self.titles: list[str] = []
        self.runnable: list[str] = []
        self._pre: list[str] | None = None
        self._h3: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "slide":
            self.slides += 1
        elif tag == "pre" and "runnable" in classes:
            self._pre = []
        elif tag == "h3":
            self._h3 = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre" and self._pre is not None:
            self.runnable.append("".join(self._pre).strip())
            self._pre = None
        elif tag == "h3" and self._h3 is not None:
            self.titles.append("".join(self._h3).strip())
            self._h3 = None

    def handle_data(self, data: str) -> None:
        for sink in (self._pre, self._h3):
            if sink is not None:
                sink.append(data)


def library_query(text: str) -> cypher.Query | None:
    return next((q for q in map(cypher.query, cypher.names()) if q.body == text), None)


@pytest.mark.parametrize("base_url", [None, "http://localhost:8474"])
def test_every_runnable_block_is_a_library_query_or_its_params(base_url: str | None) -> None:
    guide = Guide(browser.render_guide(base_url))
    assert guide.slides >= 12 and len(guide.titles) == guide.slides
    used: list[str] = []
    pending: dict[str, str] | None = None  # the :param block waiting for its query
    for block in guide.runnable:
        if block.startswith(":style"):
            assert block == f":style {base_url}/fraudgraph.grass"
            continue
        if block.startswith(":param"):
            assert pending is None, "two :param blocks in a row"
            lines = block.split(";\n")
            matches = [PARAM_LINE.fullmatch(line) for line in lines]
            assert all(matches), block
            pending = {m.group(1): m.group(2) for m in matches if m}
            assert len(pending) == len(lines), "a parameter set twice"
            continue
        q = library_query(block)
        assert q is not None, f"not the text of any cypher/*.cypher:\n{block}"
        assert not q.writes
        declared = {p.name for p in q.params}
        assert set(pending or {}) == declared, f"{q.name}: :param block does not match"
        if pending:  # the example values are literals of the declared types
            bound = cypher.bind(q, pending)
            assert set(bound) == declared
        used.append(q.name)
        pending = None
    assert pending is None, "a :param block with no query after it"
    assert set(WORKFLOW) <= set(used)
    assert any(b.startswith(":style") for b in guide.runnable) == (base_url is not None)


def test_integer_parameters_stay_integers_in_browser() -> None:
    """`:param x => 3` is evaluated by the server as Cypher (an integer); the map form
    `:param {x: 3}` would send a float, which LIMIT refuses."""
    block = browser.param_block(cypher.query("shared_devices"), {"min_cards": "5"})
    assert block == ":param min_cards => 5;\n:param limit => 25"


@pytest.mark.parametrize(("line", "message"), [
    ("{{ query no_such_query }}", "no query named 'no_such_query'"),
    ("{{ query ring_of }}", "ring_of needs an example value for user_id"),
    ("{{ query ring_of user='u1' }}", "ring_of has no parameter 'user'"),
    ("{{ query ring_of user_id=u1 }}", "user_id=u1 is not a Cypher string"),
    ("{{ query shared_devices min_cards='3' }}", "min_cards='3' is not a Cypher integer"),
    ("{{ query mark_blocked }}", "mark_blocked changes the graph"),
])
def test_template_mistakes_are_named(tmp_path: Path, line: str, message: str) -> None:
    template = tmp_path / "guide.html"
    template.write_text(f"<slide>{line}</slide>")
    with pytest.raises(browser.GuideError, match=re.escape(message)):
        browser.render_guide(None, template)


def parse_grass(text: str) -> dict[str, dict[str, str]]:
    """Neo4j Browser's GraSS parser (parseGrass in neo4j-browser), ported: quotes are
    dropped and protect braces, selectors lose their blanks, a declaration that does not
    split into exactly `key: value` is silently dropped (here: an assertion)."""
    raw: dict[str, str] = {}
    in_quotes = in_rule = nested = False
    selector = body = ""
    for char in text:
        if char in "'\"":
            in_quotes = not in_quotes
        elif char == "{" and not in_quotes:
            nested, in_rule = (True, in_rule) if in_rule else (nested, True)
        elif char == "}" and not in_quotes:
            if nested:
                nested = False
            else:
                raw[selector], selector, body, in_rule = body, "", "", False
        elif in_rule:
            body += char
        elif not char.isspace():
            selector += char
    rules: dict[str, dict[str, str]] = {}
    for name, declarations in raw.items():
        pairs = [d.split(":") for d in declarations.split(";") if d.strip()]
        assert all(len(pair) == 2 for pair in pairs), f"{name}: {pairs}"
        rules[name] = {key.strip(): value.strip() for key, value in pairs}
    return rules


def test_style_colours_every_label_and_highlights_marks_last() -> None:
    text = browser.style_text()
    assert "/*" not in text and "//" not in text  # Browser's GraSS has no comments
    rules = parse_grass(text)
    assert {"node", "relationship"} <= set(rules)
    for label in GRAPH_LABELS:
        assert rules[f"node.{label}"]["color"].startswith("#"), label
        assert rules[f"node.{label}"]["caption"].startswith("{"), label  # a property
    colours = [rules[f"node.{label}"]["color"] for label in GRAPH_LABELS]
    assert len(set(colours)) == len(colours)
    marks = ["node.HighRisk", "node.Blocked", "node.ConfirmedFraud"]
    assert list(rules)[-3:] == marks  # later rules win in Browser: marks override labels


def test_the_stack_whitelists_the_guide_host() -> None:
    conf = (RECIPES / "neo4j.conf").read_text()
    hosts = re.search(r"^browser\.remote_content_hostname_whitelist=(.*)$", conf, re.M)
    assert hosts and browser.GUIDE_HOST in hosts.group(1).split(",")


def test_server_serves_guide_and_style_with_cors() -> None:
    with browser.GuideServer() as server:
        assert server.play_url == f"http://localhost:{server.port}/guide.html"
        local = f"http://127.0.0.1:{server.port}"
        with urllib.request.urlopen(local + "/guide.html", timeout=5) as response:
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            guide = response.read().decode()
        assert f":style {server.style_url}" in guide and "{{" not in guide
        with urllib.request.urlopen(local + "/fraudgraph.grass", timeout=5) as response:
            assert response.read().decode() == browser.style_text()
        preflight = urllib.request.Request(local + "/guide.html", method="OPTIONS")
        with urllib.request.urlopen(preflight, timeout=5) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == "*"
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(local + "/secrets.env", timeout=5)


def test_browser_url_prefills_the_connection_but_no_password() -> None:
    url = browser.browser_url("http://127.0.0.1:7474", "bolt://127.0.0.1:7687", "neo4j",
                              "http://localhost:8474/guide.html")
    assert url == ("http://127.0.0.1:7474/browser/?dbms=bolt://neo4j@127.0.0.1:7687"
                   "&cmd=play&arg=http://localhost:8474/guide.html")


def test_browser_command_without_neo4j_fails_in_one_line() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = subprocess.run([FRAUDGRAPH, "browser"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "FRAUDGRAPH_NEO4J_HTTP_PORT": str(port)},
                            check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: Neo4j Browser at http://127.0.0.1:{port}/browser/ "
                                    "does not answer")
    assert "fraudgraph stack up" in result.stderr and result.stdout == ""
