"""The running default stack: idempotent `up`, status, secrets, loopback, recorded jars."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from fraudgraph.settings import Settings
from fraudgraph.stack import RECIPES, manager, process
from fraudgraph.stack.jars import jar_dir, resolved_jars
from tests.integration.cli_helpers import run_cli


def pids(settings: Settings) -> dict[str, int | None]:
    return {s.name: s.pid for s in manager.status(settings)}


def test_second_up_is_quick_and_changes_nothing(stack: Settings) -> None:
    before = pids(stack)
    assert all(before.values()), before
    started = time.monotonic()
    result = run_cli("stack", "up")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "already running" in result.stdout
    assert "started" not in result.stdout and "created" not in result.stdout
    assert elapsed < 10, f"second up took {elapsed:.1f}s"
    assert pids(stack) == before


def test_status_reports_every_service_healthy(stack: Settings) -> None:
    result = run_cli("stack", "status")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines()
            if line.startswith("│ ") and "healthy" in line]
    assert sorted(row.split("│")[1].strip() for row in rows) == ["kafka", "neo4j", "postgres"]
    assert "unhealthy" not in result.stdout
    assert run_cli("stack", "status", "--check").returncode == 0


def test_secrets_file_is_private_and_not_printed(stack: Settings) -> None:
    mode = stat.S_IMODE(stack.secrets_path.stat().st_mode)
    assert mode == 0o600
    assert stack.neo4j.password and stack.postgres.password
    for args in (("stack", "status"), ("stack", "up"), ("stack", "--help"), ("smoke",)):
        result = run_cli(*args)
        assert result.returncode == 0, (args, result.stderr)
        for secret in (stack.neo4j.password, stack.postgres.password,
                       stack.postgres.superuser_password):
            assert secret not in result.stdout + result.stderr, args
    for log in (stack.data_dir / "logs").glob("*.log"):
        text = log.read_text(errors="replace")
        assert stack.neo4j.password not in text, log
        assert stack.postgres.password not in text, log


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket in LISTEN state on `port`, from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:
                found.add(address)
    return found


def test_services_listen_on_loopback_only(stack: Settings) -> None:
    loopback = {"0100007F", "0000000000000000FFFF00000100007F"}  # 127.0.0.1, ::ffff:127.0.0.1
    for port in (stack.kafka.port, stack.kafka.controller_port, stack.neo4j.bolt_port,
                 stack.neo4j.http_port, stack.postgres.port):
        addresses = listening_addresses(port)
        assert addresses, f"nothing listens on {port}"
        assert addresses <= loopback, (port, addresses)


def test_fetched_jars_match_the_recorded_lists(stack: Settings) -> None:
    for name in ("kafka", "neo4j"):
        recorded = [line for line in (RECIPES / f"{name}.jars.txt").read_text().splitlines()
                    if line and not line.startswith("#")]
        assert resolved_jars(jar_dir(name, stack.cache_dir) / "lib") == recorded, name


def test_smoke_command_round_trips_all_services(stack: Settings) -> None:
    result = run_cli("smoke")
    assert result.returncode == 0, result.stderr
    for expected in ("produced and consumed 1 message", "wrote and read a node over Bolt",
                     "wrote and read a row as role fraudgraph"):
        assert expected in result.stdout


def test_logs_command_shows_the_service_log(stack: Settings) -> None:
    result = run_cli("stack", "logs", "neo4j", "-n", "200")
    assert result.returncode == 0
    assert "Started." in result.stdout
    assert process.tail(stack.data_dir / "logs" / "neo4j.log", 200) == \
        result.stdout.splitlines()[-200:]


def test_an_existing_postgres_server_is_checked_not_managed(stack: Settings) -> None:
    env = {"FRAUDGRAPH_POSTGRES_DSN": stack.postgres.dsn()}
    result = run_cli("stack", "status", env=env)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("│ postgres"))
    assert "external" in row and "healthy" in row and "unhealthy" not in row
    assert stack.postgres.password not in result.stdout  # the DSN's password stays hidden
    up = run_cli("stack", "up", env=env)
    assert up.returncode == 0, up.stderr
    assert "postgres: external, not managed by the stack" in up.stdout
    if os.geteuid() == 0:  # the cluster running from the data folder keeps its way in
        assert stat.S_IMODE(stack.data_dir.stat().st_mode) == 0o710
    bad = run_cli("stack", "status", "--check",
                  env={"FRAUDGRAPH_POSTGRES_DSN": "host=127.0.0.1 port=1 connect_timeout=2"})
    assert bad.returncode == 1
