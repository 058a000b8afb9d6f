"""The Neo4j Browser investigation guide and graph style, generated from the Cypher library.

``browser/guide.html`` is a template of Browser guide slides; each
``{{ query NAME key='literal' ... }}`` in it becomes two runnable blocks: a ``:param``
block setting every parameter the query declares (the header's default, or the example
literal the template gives) and a block holding the query's text from
``cypher/NAME.cypher``. So the guide cannot drift from the library: a renamed query or
parameter fails the rendering, not the analyst.

:class:`GuideServer` serves the rendered guide and ``browser/fraudgraph.grass`` on
loopback with the CORS headers Browser needs to fetch them (``:play URL``, ``:style URL``).
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import cypher
from fraudgraph.errors import FraudgraphError

BROWSER_DIR = Path(__file__).resolve().parents[1] / "browser"
GUIDE_TEMPLATE = BROWSER_DIR / "guide.html"
STYLE_FILE = BROWSER_DIR / "fraudgraph.grass"
GUIDE_PATH = "/guide.html"
STYLE_PATH = "/fraudgraph.grass"
#: Browser fetches guides and styles only from hosts on the server's
#: browser.remote_content_hostname_whitelist; "localhost" is on it by default.
GUIDE_HOST = "localhost"

RUNNABLE = '<pre class="pre-scrollable code runnable">{}</pre>'
_QUERY = re.compile(r"\{\{\s*query\s+(?P<name>\w+)(?P<args>[^}]*)\}\}")
_STYLE = re.compile(r"\{\{\s*style\s*\}\}")
_ARG = re.compile(r"\s*(\w+)=('[^'\\]*'|\S+)")
_LITERALS = {
    "integer": re.compile(r"-?\d+"),
    "float": re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?"),
    "boolean": re.compile(r"true|false"),
    "string": re.compile(r"'[^'\\]*'"),
}


class GuideError(FraudgraphError):
    """The guide template names a query or parameter the library does not have, or gives
    a value that is not a Cypher literal of the parameter's declared type."""


def param_block(q: cypher.Query, examples: Mapping[str, str]) -> str:
    """``:param name => literal`` lines for every parameter of ``q`` (Browser evaluates the
    literal as Cypher, so integers stay integers); multi-statement, separated by ``;``."""
    unknown = sorted(set(examples) - {p.name for p in q.params})
    if unknown:
        raise GuideError(f"guide: {q.name} has no parameter {unknown[0]!r}")
    lines = []
    for p in q.params:
        literal = examples.get(p.name, p.default)
        if literal is None:
            raise GuideError(f"guide: {q.name} needs an example value for {p.name} "
                             f"({p.name}='...' in its {{{{ query }}}} line)")
        pattern = _LITERALS.get(p.type.split("|")[0].strip())
        if pattern is not None and not pattern.fullmatch(literal):
            raise GuideError(f"guide: {q.name}: {p.name}={literal} is not a Cypher {p.type}")
        lines.append(f":param {p.name} => {literal}")
    return ";\n".join(lines)


def query_blocks(name: str, examples: Mapping[str, str]) -> str:
    """The HTML of one guide step: the query's purpose, its ``:param`` block (if it takes
    parameters) and the query text, each block runnable in Browser."""
    if name not in cypher.names():
        raise GuideError(f"guide: no query named {name!r} in cypher/")
    q = cypher.query(name)
    if q.writes:
        raise GuideError(f"guide: {name} changes the graph; the guide runs read queries only")
    columns = ", ".join(column for column, _ in q.returns)
    parts = [f'<p><strong>{html.escape(q.name)}</strong>: {html.escape(q.purpose)}. '
             f"<em>Columns: {html.escape(columns)}.</em></p>"]
    if q.params:
        parts.append(RUNNABLE.format(html.escape(param_block(q, examples))))
    parts.append(RUNNABLE.format(html.escape(q.body)))
    return "\n".join(parts)


def render_guide(base_url: str | None = None, template: Path = GUIDE_TEMPLATE) -> str:
    """The guide HTML. ``base_url`` (where the style is served) adds a ``:style`` block."""

    def expand(match: re.Match[str]) -> str:
        args = match.group("args")
        examples = dict(_ARG.findall(args))
        if _ARG.sub("", args).strip():
            raise GuideError(f"guide: cannot read {match.group(0)!r} (expected key='value')")
        return query_blocks(match.group("name"), examples)

    def style(_match: re.Match[str]) -> str:
        if base_url is None:
            return ("<p>Run <code>fraudgraph browser</code> and then the <code>:style</code> "
                    "command it prints.</p>")
        return RUNNABLE.format(html.escape(f":style {base_url}{STYLE_PATH}"))

    return _STYLE.sub(style, _QUERY.sub(expand, template.read_text()))


def style_text() -> str:
    """The GraSS graph style (for ``:style URL``, or to paste after ``:style``)."""
    return STYLE_FILE.read_text()


def browser_url(http_url: str, bolt_uri: str, user: str, play_url: str | None = None) -> str:
    """Neo4j Browser's address with the connection (and optionally the guide) filled in:
    ``?dbms=`` prefills the connect form (without the password), ``cmd=play`` plays the
    guide on start."""
    scheme, _, address = bolt_uri.partition("://")
    dbms = f"{scheme}://{quote(user, safe='')}@{address}"
    url = f"{http_url}/browser/?dbms={quote(dbms, safe=':/@')}"
    if play_url:
        url += f"&cmd=play&arg={quote(play_url, safe=':/')}"
    return url


class GuideServer:
    """The guide and the style over HTTP on 127.0.0.1, in a daemon thread.

    The guide is rendered once, here (a template mistake raises GuideError). ``port`` 0
    picks a free port; :attr:`play_url` and :attr:`style_url` are what to give Browser.
    """

    def __init__(self, port: int = 0) -> None:
        self._server = _Server(port)
        self.port: int = self._server.server_address[1]
        self.base_url = f"http://{GUIDE_HOST}:{self.port}"
        try:
            self._server.files = {
                GUIDE_PATH: (render_guide(self.base_url).encode(), "text/html; charset=utf-8"),
                STYLE_PATH: (style_text().encode(), "text/plain; charset=utf-8"),
            }
        except BaseException:
            self._server.server_close()
            raise
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="browser-guide", daemon=True)

    @property
    def play_url(self) -> str:
        return self.base_url + GUIDE_PATH

    @property
    def style_url(self) -> str:
        return self.base_url + STYLE_PATH

    def start(self) -> GuideServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> GuideServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.files: dict[str, tuple[bytes, str]] = {}  # path -> (body, content type)


class _Handler(BaseHTTPRequestHandler):
    """GET (and the CORS preflight Browser sends first: it adds cache headers)."""

    def do_OPTIONS(self) -> None:
        self.send_response(204)
        self._cors()
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        files = cast(_Server, self.server).files
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        body, kind = files.get(path, (b"not found: try /guide.html or /fraudgraph.grass\n",
                                      "text/plain"))
        self.send_response(200 if path in files else 404)
        self._cors()
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(body)

    def _cors(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Methods", "GET, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "*")
        self.send_header("Access-Control-Max-Age", "600")

    def log_message(self, format: str, *args: Any) -> None:
        pass
