"""A second, private stack (own data folder and ports): cold start, down/up keeps data.

Runs the real `fraudgraph stack` commands in subprocesses, as a user would.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraudgraph.settings import Settings, load_settings
from fraudgraph.stack import manager, process
from graph import driver as neo4j_driver
from storage import postgres as store
from tests.integration.cli_helpers import run_cli


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture(scope="module")
def private_env() -> Iterator[dict[str, str]]:
    # Not pytest's tmp_path: that is 0700 under /tmp/pytest-of-root, which the
    # `postgres` user (the cluster's owner when we run as root) cannot reach.
    data_dir = Path(tempfile.mkdtemp(prefix="fraudgraph-lifecycle-"))
    data_dir.chmod(0o755)
    kafka, controller, bolt, http, pg = free_ports(5)
    env = {
        "FRAUDGRAPH_DATA_DIR": str(data_dir),
        "FRAUDGRAPH_KAFKA_PORT": str(kafka), "FRAUDGRAPH_KAFKA_CONTROLLER_PORT": str(controller),
        "FRAUDGRAPH_NEO4J_BOLT_PORT": str(bolt), "FRAUDGRAPH_NEO4J_HTTP_PORT": str(http),
        "FRAUDGRAPH_POSTGRES_PORT": str(pg), "FRAUDGRAPH_KAFKA_PARTITIONS": "2",
    }
    try:
        yield env
    finally:
        run_cli("stack", "down", env=env)
        shutil.rmtree(data_dir, ignore_errors=True)


def settings_for(env: dict[str, str]) -> Settings:
    return load_settings({**os.environ, **env})


def write_marker_data(settings: Settings) -> None:
    assert settings.neo4j.password
    with neo4j_driver.connect(settings.neo4j.uri, "neo4j", settings.neo4j.password) as drv:
        drv.execute_query("CREATE (:Persisted {id: 'kept-across-restart'})")
    conn = store.connect(settings.postgres.dsn())
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE persisted (id text PRIMARY KEY)")
        cur.execute("INSERT INTO persisted VALUES ('kept-across-restart')")
    conn.close()


def read_marker_data(settings: Settings) -> tuple[list[str], list[str]]:
    assert settings.neo4j.password
    with neo4j_driver.connect(settings.neo4j.uri, "neo4j", settings.neo4j.password) as drv:
        records, _, _ = drv.execute_query("MATCH (p:Persisted) RETURN p.id AS id")
    conn = store.connect(settings.postgres.dsn())
    with conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM persisted")
        rows = [r[0] for r in cur.fetchall()]
    conn.close()
    return [r["id"] for r in records], rows


def test_up_from_nothing_then_down_then_up_keeps_data(private_env: dict[str, str]) -> None:
    first = run_cli("stack", "up", env=private_env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.count("started (pid") == 3
    assert "neo4j: setting the generated initial password" in first.stdout
    assert "postgres: initdb" in first.stdout
    assert "created topic:transactions" in first.stdout

    settings = settings_for(private_env)
    assert oct(settings.secrets_path.stat().st_mode & 0o777) == "0o600"
    write_marker_data(settings)
    before = {s.name: s.pid for s in manager.status(settings)}

    down = run_cli("stack", "down", env=private_env)
    assert down.returncode == 0, down.stderr
    for name in ("kafka", "neo4j", "postgres"):
        assert f"{name}: stopped" in down.stdout
        pid = before[name]
        assert pid is not None and not process.alive(pid)
    assert all(s.health == "stopped" for s in manager.status(settings))
    assert run_cli("stack", "status", "--check", env=private_env).returncode == 1

    again = run_cli("stack", "up", env=private_env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "initdb" not in again.stdout and "initial password" not in again.stdout
    assert "created" not in again.stdout  # topics, role and database already exist
    assert read_marker_data(settings) == (["kept-across-restart"], ["kept-across-restart"])


def test_up_names_the_service_and_port_when_a_port_is_taken(
        private_env: dict[str, str]) -> None:
    run_cli("stack", "down", env=private_env)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = {**private_env, "FRAUDGRAPH_NEO4J_BOLT_PORT": str(port)}
        result = run_cli("stack", "up", env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(error_lines) == 1, result.stderr
    assert f"port {port} (bolt) is taken" in error_lines[0]
    assert "FRAUDGRAPH_NEO4J_BOLT_PORT" in error_lines[0]
    # Nothing was left half-started.
    assert all(s.health == "stopped" for s in manager.status(settings_for(env)))
