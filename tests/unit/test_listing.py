"""Listings for people and scripts (`--format table|json|csv`, `fraudgraph.ui.emit`), over an
in-memory store behind the project's own connect interface; `blocklist add | remove` and
their graph marks are tested against the real services (tests/integration/test_blocklist.py)."""

from __future__ import annotations

import builtins
import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from detectors.blocklist import Entry, NewEntry
from fraudgraph import connect
from fraudgraph.cli import cli
from fraudgraph.ui import FORMAT, Column, emit
from storage.blocklist import Upserted

#: Longer than any terminal's column: rich used to cut it to `bar-card-0123…`.
LONG_ID = "bar-card-" + "0123456789abcdef" * 6
UPDATED = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
LISTINGS = [("blocklist", "list"), ("blocklist", "show"), ("gnn", "models"), ("query", "run"),
            ("query", "list"), ("graph", "stats"), ("stack", "status"), ("smoke",),
            ("bench-decode",), ("bench-projection",)]


def command(path: tuple[str, ...]) -> click.Command:
    found: click.Command = cli
    for name in path:
        assert isinstance(found, click.Group)
        found = found.commands[name]
    return found


@pytest.mark.parametrize("path", LISTINGS, ids=" ".join)
def test_every_listing_takes_the_same_format_option(path: tuple[str, ...]) -> None:
    (option,) = [p for p in command(path).params if p.name == "fmt"]
    assert option.opts == ["--format"] and option.default == "table"
    assert isinstance(option.type, click.Choice)
    assert list(option.type.choices) == ["table", "json", "csv"]


@click.command()
@FORMAT
def listing(fmt: str) -> None:
    emit([["card", LONG_ID, 0.5, UPDATED, None, ["a", "b"]],
          ["user", "u-1", 1.0, UPDATED, UPDATED, []]],
         [Column("type"), Column("id"), Column("score", lambda s: f"{s:.2f}", "right"),
          Column("updated"), Column("expires", lambda e: "never" if e is None else str(e)),
          Column("tags")], fmt, "a [bold]listing[/bold]")


def piped(*args: str, command: click.Command = listing, **env: str) -> Result:
    """Run a command as a script would: stdout a pipe, on a narrow terminal."""
    result = CliRunner().invoke(command, list(args), env={"COLUMNS": "40", **env})
    assert result.exit_code == 0, result.output
    return result


def test_json_is_an_array_of_objects_with_raw_values() -> None:
    rows = json.loads(piped("--format", "json").stdout)
    assert rows == [
        {"type": "card", "id": LONG_ID, "score": 0.5, "updated": "2026-03-01T12:30:00+00:00",
         "expires": None, "tags": ["a", "b"]},
        {"type": "user", "id": "u-1", "score": 1.0, "updated": "2026-03-01T12:30:00+00:00",
         "expires": "2026-03-01T12:30:00+00:00", "tags": []}]


def test_csv_is_a_header_row_then_the_rows() -> None:
    text = piped("--format", "csv").stdout
    assert list(csv.reader(io.StringIO(text))) == [
        ["type", "id", "score", "updated", "expires", "tags"],
        ["card", LONG_ID, "0.5", "2026-03-01T12:30:00+00:00", "", "a, b"],
        ["user", "u-1", "1.0", "2026-03-01T12:30:00+00:00", "2026-03-01T12:30:00+00:00", ""]]
    assert "listing" not in text  # no title


def test_a_piped_table_shows_every_id_whole_on_one_line() -> None:
    """`fraudgraph … | grep ID` finds the id, however narrow the terminal."""
    table = piped().stdout
    assert [line for line in table.splitlines() if LONG_ID in line]
    assert "…" not in table
    assert "a [bold]listing[/bold]" in table  # titles and cells are text, not markup
    assert "never" in table and "0.50" in table


# -- the blocklist commands over a fake store -------------------------------------------


def entry(entity_id: str, reason: str = "stolen", source: str = "manual",
          revoked: bool = False) -> Entry:
    return Entry("card", entity_id, reason, source, 0.8, {}, UPDATED, UPDATED, None,
                 UPDATED if revoked else None, "tester" if revoked else None)


class FakeStore:
    """The few BlocklistStore methods the CLI uses; an upsert keeps an existing row."""

    def __init__(self, *entries: Entry) -> None:
        self.entries = {(e.entity_type, e.entity_id): e for e in entries}
        self.changes: list[dict[str, Any]] = []

    def __enter__(self) -> FakeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def list(self, entity_type: str | None = None, source: str | None = None,
             include_inactive: bool = False, limit: int = 100) -> list[Entry]:
        return list(self.entries.values())[:limit]

    def get(self, entity_type: str, entity_id: str) -> Entry | None:
        return self.entries.get((entity_type, entity_id))

    def history(self, entity_type: str, entity_id: str) -> builtins.list[dict[str, Any]]:
        return self.changes

    def upsert(self, entries: builtins.list[NewEntry], actor: str) -> int:
        changed = 0
        for new in entries:
            if (new.entity_type, new.entity_id) not in self.entries:
                self.entries[new.entity_type, new.entity_id] = entry(
                    new.entity_id, new.reason, new.source)
                changed += 1
        return changed

    def upsert_many(self, entries: builtins.list[NewEntry], actor: str) -> Upserted:
        return Upserted(self.upsert(entries, actor), frozenset())

    def revoke(self, entity_type: str, entity_id: str, actor: str, reason: str) -> bool:
        found = self.entries.get((entity_type, entity_id))
        if found is None or found.revoked_at is not None:
            return False
        self.entries[entity_type, entity_id] = entry(entity_id, found.reason, found.source,
                                                     revoked=True)
        return True


def blocklist(store: FakeStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
              *args: str) -> Result:
    monkeypatch.setattr(connect, "blocklist", lambda settings: store)
    return piped("blocklist", *args, command=cli, FRAUDGRAPH_DATA_DIR=str(tmp_path),
                 USER="tester")


def test_blocklist_list_in_every_format_keeps_the_id_whole(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    store = FakeStore(entry(LONG_ID))
    table = blocklist(store, monkeypatch, tmp_path, "list").stdout
    assert [line for line in table.splitlines() if LONG_ID in line and "stolen" in line]
    assert "blocklist (1 shown)" in table
    (row,) = json.loads(blocklist(store, monkeypatch, tmp_path, "list", "--format",
                                  "json").stdout)
    assert row == {"type": "card", "id": LONG_ID, "status": "active", "source": "manual",
                   "score": 0.8, "reason": "stolen", "updated": "2026-03-01T12:30:00+00:00",
                   "expires": None}
    text = blocklist(store, monkeypatch, tmp_path, "list", "--format", "csv").stdout
    assert list(csv.reader(io.StringIO(text))) == [
        ["type", "id", "status", "source", "score", "reason", "updated", "expires"],
        ["card", LONG_ID, "active", "manual", "0.8", "stolen", "2026-03-01T12:30:00+00:00", ""]]


def test_blocklist_show_as_json_is_the_history_alone(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    store = FakeStore(entry(LONG_ID))
    store.changes = [{"at": UPDATED, "action": "add", "actor": "tester", "source": "manual",
                      "score": 0.8, "reason": "stolen", "expires_at": None}]
    shown = blocklist(store, monkeypatch, tmp_path, "show", "card", LONG_ID, "--format", "json")
    assert json.loads(shown.stdout) == [
        {"at": "2026-03-01T12:30:00+00:00", "action": "add", "actor": "tester",
         "source": "manual", "score": 0.8, "reason": "stolen", "expires": None}]
    table = blocklist(store, monkeypatch, tmp_path, "show", "card", LONG_ID).stdout
    assert "history" in table and "revoked by" in table and "active" in table


# -- other listings -------------------------------------------------------------------


def test_query_list_as_json_names_every_read_query() -> None:
    rows = json.loads(piped("query", "list", "--format", "json", command=cli).stdout)
    assert rows and all(set(row) == {"name", "parameters", "purpose"} for row in rows)
    assert all(isinstance(row["parameters"], list) for row in rows)


def test_stack_status_as_json_puts_its_hint_on_stderr(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    from fraudgraph.stack import manager

    down = manager.ServiceStatus("kafka", "9092", None, "stopped", "not started",
                                 tmp_path / "kafka.log")
    monkeypatch.setattr(manager, "status", lambda settings: [down])
    result = piped("stack", "status", "--format", "json", command=cli,
                   FRAUDGRAPH_DATA_DIR=str(tmp_path))
    assert json.loads(result.stdout) == [{"service": "kafka", "ports": "9092", "pid": None,
                                          "health": "stopped", "detail": "not started"}]
    assert "some services are not healthy" in result.stderr
