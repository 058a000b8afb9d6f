"""Shared pieces of the command line: consoles, help epilogs, durations, progress, tables,
and the one way a listing is printed (``--format table|json|csv``, :func:`emit`)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console, ConsoleDimensions, JustifyMethod
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from fraudgraph.settings import ENV_DOCS, Settings

#: How wide stdout is when it is not a terminal (a pipe, a file): wide enough that no
#: table cell is ever cut or folded, so ``| grep ID`` finds every id whole.
PIPE_WIDTH = 10_000


class _Stdout(Console):
    """rich's Console, except when stdout is not a terminal: rich then still takes the
    width of the terminal the command runs in (or 80) and cuts table cells to fit it
    (``bar-card…``); here the lines are as long as their content instead."""

    @property
    def size(self) -> ConsoleDimensions:
        measured = super().size
        if self.is_terminal:
            return measured
        return ConsoleDimensions(PIPE_WIDTH, measured.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self.width, self.height = new_size


out = _Stdout(highlight=False)
err = Console(stderr=True, highlight=False)

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, None: 1000}


def env_epilog(*prefixes: str) -> str:
    """An epilog listing the FRAUDGRAPH_* variables (and defaults) behind a command."""
    rows = [f"  {name:<36} {default}" for name, (default, _) in ENV_DOCS.items()
            if name.startswith(prefixes)]
    return "\b\nEnvironment (default):\n" + "\n".join(rows)


def settings_from(ctx: click.Context) -> Settings:
    settings = ctx.find_root().obj
    assert isinstance(settings, Settings)
    return settings


def report(message: str) -> None:
    """A progress line for long-running work."""
    out.print(f"[dim]·[/dim] {escape(message)}")


def reporter(fmt: str) -> Callable[[str], None]:
    """:func:`report` for a command with ``--format``: to stderr with json or csv."""
    console = notes(fmt)
    return lambda message: console.print(f"[dim]·[/dim] {escape(message)}")


class Duration(click.ParamType):
    """``90s``, ``15m``, ``6h``, ``3d``, ``250ms`` (a bare number is seconds) → milliseconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = _DURATION.fullmatch(str(value).strip())
        if not match:
            self.fail(f"{value!r} is not a duration like 90s, 15m, 6h or 3d", param, ctx)
        return round(float(match.group(1)) * _UNIT_MS[match.group(2)])


DURATION = Duration()


class EventTime(click.ParamType):
    """An ISO-8601 time with its zone (``2026-03-01T00:00:00Z``) → epoch milliseconds;
    ``words`` pass through unchanged."""

    name = "time"

    def __init__(self, *words: str) -> None:
        self.words = words

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int | str:
        if isinstance(value, int) or value in self.words:
            return value
        try:
            parsed = datetime.fromisoformat(str(value).strip())
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            extra = "".join(f" or {w}" for w in self.words)
            self.fail(f"{value!r} is not a time like 2026-03-01T00:00:00Z{extra}", param, ctx)
        return int(parsed.timestamp() * 1000)


class RateColumn(ProgressColumn):
    """Items per second, once known."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f}/s" if task.speed else "", style="cyan")


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Any]:
    """A rich progress bar; yields ``advance(n)``."""
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TaskProgressColumn(), RateColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    """A summary table of text cells (shown literally, never read as rich markup): the
    first column left-aligned, the others right-aligned; no cell is ever cut short."""
    result = Table(title=title)
    for i, column in enumerate(columns):
        result.add_column(column, justify="right" if i else "left", overflow="fold")
    for row in rows:
        result.add_row(*[escape(cell) for cell in row])
    return result


# -- listings: --format table|json|csv ---------------------------------------------

FORMATS = ("table", "json", "csv")

#: The ``--format`` option of every listing command; the command takes it as ``fmt``.
FORMAT = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
    help="table for people; json (an array of objects, one per row) or csv (a header row, "
         "then the rows) for scripts: stdout then holds nothing but the rows.")


def text(value: Any) -> str:
    """How a table cell shows a value unless its column says otherwise: ``-`` for None,
    a list as its items joined by commas, a time in UTC."""
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return str(value)


@dataclass(frozen=True)
class Column:
    """A column of a listing.  ``name``: the JSON key and the CSV header; ``header``: the
    table's heading (default: the name); ``show``: how a table cell shows a value (a
    ``str`` literally, never read as rich markup; a rich ``Text`` with its style)."""

    name: str
    show: Callable[[Any], str | Text] = text
    justify: JustifyMethod = "left"
    header: str | None = None


def emit(rows: Iterable[Sequence[Any]], columns: Sequence[Column], fmt: str,
         title: str) -> None:
    """Print a listing to stdout.  Each row holds one raw value per column, in order.

    ``table``: a rich table titled ``title``, each value through its column's ``show``.
    ``json``: an array of objects, one per row, keyed by column name (times as ISO 8601,
    in UTC when they have a zone; None as null).  ``csv``: a header row of the column
    names, then the rows (None as an empty field, lists joined by ``, ``, maps as JSON).
    With json and csv nothing else is written: no title, no markup, no colour.
    """
    names = [column.name for column in columns]
    if fmt == "json":
        objects = [dict(zip(names, row, strict=True)) for row in rows]
        click.echo(json.dumps(objects, indent=2, default=_json_value))
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(names)
        writer.writerows([_csv_value(value) for value in row] for row in rows)
        click.echo(buffer.getvalue(), nl=False)
    else:
        out.print(_listing_table(title, columns, rows))


def notes(fmt: str) -> Console:
    """Where a listing command prints its other lines (hints, progress): stdout beside a
    table, stderr with json or csv, so that stdout holds the rows alone."""
    return out if fmt == "table" else err


def _listing_table(title: str, columns: Sequence[Column],
                   rows: Iterable[Sequence[Any]]) -> Table:
    result = Table(title=escape(title))
    for column in columns:
        result.add_column(escape(column.header or column.name), justify=column.justify,
                          overflow="fold")
    for row in rows:
        shown = [column.show(value) for column, value in zip(columns, row, strict=True)]
        result.add_row(*[Text(cell) if isinstance(cell, str) else cell for cell in shown])
    return result


def _json_value(value: Any) -> Any:
    """``json.dumps``' fallback: times (Python's and the Neo4j driver's) as ISO 8601."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return ", ".join(_csv_value(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, default=_json_value)
    if isinstance(value, int | float | bool):
        return str(value)
    return str(_json_value(value))
