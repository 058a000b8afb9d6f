"""The CLI: --help everywhere, one-line errors without tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from fraudgraph.cli import cli

FRAUDGRAPH = str(Path(sys.executable).parent / "fraudgraph")


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += all_commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FRAUDGRAPH, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env}, check=False)


@pytest.mark.parametrize("path", all_commands(cli), ids=lambda p: " ".join(p) or "fraudgraph")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = run(*path, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: fraudgraph")
    assert "FRAUDGRAPH_" in result.stdout  # the environment behind the options


def test_help_never_shows_secrets() -> None:
    result = run("stack", "--help", FRAUDGRAPH_NEO4J_PASSWORD="do-not-print-me-1")
    assert "do-not-print-me-1" not in result.stdout + result.stderr


@pytest.mark.parametrize(("args", "env", "expected"), [
    (("stack", "--bogus"), {}, "No such option '--bogus'. (see `fraudgraph stack --help`)"),
    (("stack", "logs", "redis"), {}, "'redis' is not one of"),
    (("nosuchcommand",), {}, "No such command 'nosuchcommand'"),
    (("stack", "status"), {"FRAUDGRAPH_KAFKA_PORT": "x"}, "FRAUDGRAPH_KAFKA_PORT='x' is not"),
    (("smoke",), {"FRAUDGRAPH_KAFKA_BOOTSTRAP": "127.0.0.1:1",
                  "FRAUDGRAPH_NEO4J_PASSWORD": "unused-pass-1"},
     "kafka at 127.0.0.1:1 failed the round trip"),
])
def test_errors_are_short_and_have_no_traceback(args: tuple[str, ...], env: dict[str, str],
                                                expected: str) -> None:
    result = run(*args, **env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ")


@pytest.mark.parametrize(("env", "expected"), [
    ({"FRAUDGRAPH_NEO4J_PASSWORD": "neo4j", "FRAUDGRAPH_POSTGRES_PASSWORD": "Str0ng-pg-1"},
     "FRAUDGRAPH_NEO4J_PASSWORD is a default or empty password"),
    ({"FRAUDGRAPH_NEO4J_PASSWORD": "Str0ng-neo-1", "FRAUDGRAPH_POSTGRES_PASSWORD": "postgres"},
     "FRAUDGRAPH_POSTGRES_PASSWORD is a default or empty password"),
    ({"FRAUDGRAPH_POSTGRES_PASSWORD": "Str0ng-pg-1"}, "FRAUDGRAPH_NEO4J_PASSWORD"),  # unset
])
def test_the_daemon_refuses_default_or_missing_passwords_in_production(
        tmp_path: Path, env: dict[str, str], expected: str) -> None:
    """Outside the dev profile nothing is generated and no default is accepted; the
    error names the variable, never the value, and nothing is started."""
    result = run("run", "--metrics-port", "0", FRAUDGRAPH_PROFILE="prod",
                 FRAUDGRAPH_DATA_DIR=str(tmp_path), FRAUDGRAPH_KAFKA_BOOTSTRAP="127.0.0.1:1",
                 **env)
    assert result.returncode != 0 and result.stderr.startswith("error: ")
    assert expected in result.stderr and "Traceback" not in result.stderr
    for value in env.values():
        assert value not in result.stdout + result.stderr
    assert not (tmp_path / "secrets.env").exists()
