"""Shared pieces of the command line: consoles, help epilogs, durations, progress, tables."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click
from rich.console import Console
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

out = Console(highlight=False)
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
    result = Table(title=title)
    for i, column in enumerate(columns):
        result.add_column(column, justify="right" if i else "left")
    for row in rows:
        result.add_row(*[escape(cell) for cell in row])
    return result
