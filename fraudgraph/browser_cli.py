"""`fraudgraph browser`: Neo4j Browser with the investigation guide and the graph style."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import webbrowser

import click
from rich.markup import escape

from fraudgraph.browser import GuideServer, browser_url
from fraudgraph.errors import FraudgraphError, ServiceUnavailable
from fraudgraph.settings import Settings, require_secret
from fraudgraph.ui import env_epilog, out, settings_from

BROWSER_ENV = env_epilog("FRAUDGRAPH_NEO4J_HTTP_PORT", "FRAUDGRAPH_NEO4J_URI",
                         "FRAUDGRAPH_NEO4J_USER", "FRAUDGRAPH_NEO4J_PASSWORD",
                         "FRAUDGRAPH_DATA_DIR")


@click.command(epilog=BROWSER_ENV)
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port to serve the guide and style on (127.0.0.1); 0 picks a free one.")
@click.option("--open", "open_browser", is_flag=True,
              help="Also open Neo4j Browser in your web browser, the guide playing.")
@click.option("--show-password", is_flag=True,
              help="Print the Neo4j password too (otherwise: where to find it).")
@click.pass_context
def browser(ctx: click.Context, port: int, open_browser: bool, show_password: bool) -> None:
    """Investigate in Neo4j Browser: connection details, the guide and the graph style.

    Prints the Browser URL and how to connect, then serves the investigation guide
    (every step a query of the library, cypher/*.cypher) and the graph style on
    127.0.0.1 until Ctrl-C. In Browser, run the `:play` and `:style` commands it prints.

    \b
    Examples:
      fraudgraph browser                   # serve on a free port, print what to run
      fraudgraph browser --port 8474 --open
      fraudgraph browser --show-password   # print the password as well
    """
    settings = settings_from(ctx)
    n = settings.neo4j
    _check_browser(n.http_url)
    try:
        server = GuideServer(port)
    except OSError as exc:
        raise FraudgraphError(f"cannot serve the guide on 127.0.0.1:{port} ({exc.strerror}); "
                              "choose another --port, or 0 for a free one") from None
    with server:
        opened = browser_url(n.http_url, n.uri, n.user, server.play_url)
        lines = [
            f"Neo4j Browser  {n.http_url}/browser/",
            f"  connect URL  {n.uri}",
            f"  user         {n.user}",
            f"  password     {_password_line(settings, show_password)}",
            "",
            f"Serving the guide and the graph style on {server.base_url}/ (Ctrl-C stops).",
            "In Browser, once connected, run:",
            f"  :play {server.play_url}",
            f"  :style {server.style_url}",
            "",
            "Or open Browser with the connection filled in and the guide playing:",
            f"  {opened}",
        ]
        for line in lines:
            out.print(escape(line), soft_wrap=True)
        if open_browser and not webbrowser.open(opened):
            out.print("(no web browser to open here: copy the address above)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            out.print("stopped serving the guide")


def _password_line(settings: Settings, show: bool) -> str:
    if show:
        return require_secret(settings.neo4j.password, "FRAUDGRAPH_NEO4J_PASSWORD")
    return (f"FRAUDGRAPH_NEO4J_PASSWORD, or NEO4J_PASSWORD in {settings.secrets_path} "
            "(--show-password prints it)")


def _check_browser(http_url: str) -> None:
    """Fail in one line when Neo4j's HTTP port does not answer (the stack is down)."""
    try:
        with urllib.request.urlopen(f"{http_url}/browser/", timeout=5) as response:
            response.read(1)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServiceUnavailable(f"Neo4j Browser at {http_url}/browser/ does not answer "
                                 f"({reason}); run `fraudgraph stack up`") from None
