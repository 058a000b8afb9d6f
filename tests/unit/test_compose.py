"""compose/: the docker-compose file and its Prometheus/Grafana configs are consistent.

The structure is checked here, and the real Compose CLI (`docker compose config`,
built once from the Go module proxy into ~/.cache/fraudgraph, no Docker engine needed)
validates the file against the Compose specification.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from fraudgraph.settings import load_settings

COMPOSE = Path(__file__).parents[2] / "compose"
COMPOSE_VERSION = "v2.29.7"
COMPOSE_MODULE = f"github.com/docker/compose/v2/cmd@{COMPOSE_VERSION}"
COMPOSE_CACHE = (Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                 / "fraudgraph" / f"compose-{COMPOSE_VERSION}")
SECRETS_ENV = {"FRAUDGRAPH_NEO4J_PASSWORD": "compose-test-1",
               "FRAUDGRAPH_POSTGRES_PASSWORD": "compose-test-2",
               "GRAFANA_ADMIN_PASSWORD": "compose-test-3"}


def compose_file() -> dict[str, Any]:
    data = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_every_long_running_service_has_a_healthcheck_and_pinned_image() -> None:
    services = compose_file()["services"]
    assert {"kafka", "neo4j", "postgres", "prometheus", "grafana"} <= set(services)
    for name, service in services.items():
        assert re.search(r":v?[0-9][\w.-]*$", service["image"]), f"{name}: image tag not pinned"
        if name != "kafka-topics":
            assert service["healthcheck"]["test"], name
    assert services["neo4j"]["image"].startswith("neo4j:5.26")
    assert services["kafka"]["image"] == "apache/kafka:3.9.1"


def test_ports_are_loopback_and_match_the_local_stack_defaults() -> None:
    defaults = load_settings({"FRAUDGRAPH_DATA_DIR": "/nonexistent"})
    expected = {
        "kafka": {defaults.kafka.port},
        "neo4j": {defaults.neo4j.http_port, defaults.neo4j.bolt_port},
        "postgres": {defaults.postgres.port},
    }
    for name, ports in expected.items():
        published = compose_file()["services"][name]["ports"]
        assert all(p.startswith("127.0.0.1:") for p in published), name
        found = {int(re.search(r":-(\d+)\}", p).group(1)) for p in published}  # type: ignore[union-attr]
        assert found == ports, name


def test_passwords_have_no_defaults() -> None:
    text = (COMPOSE / "docker-compose.yml").read_text()
    for var in SECRETS_ENV:
        assert re.search(r"\$\{" + var + r":\?", text), f"{var} must be required"
        assert not re.search(r"\$\{" + var + r":-", text), f"{var} must have no default"
    assert "neo4j/neo4j" not in text


def test_spec_topics_are_created_by_compose() -> None:
    command = " ".join(compose_file()["services"]["kafka-topics"]["command"])
    defaults = load_settings({"FRAUDGRAPH_DATA_DIR": "/nonexistent"})
    for topic in defaults.topics.all():
        assert topic in command


def test_grafana_dashboard_uses_the_provisioned_datasource() -> None:
    datasource = yaml.safe_load(
        (COMPOSE / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    dashboard = json.loads((COMPOSE / "grafana/dashboards/fraudgraph-overview.json").read_text())
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid
        assert all(t["expr"] for t in panel["targets"])
    prometheus = yaml.safe_load((COMPOSE / "prometheus/prometheus.yml").read_text())
    assert "fraudgraph" in {job["job_name"] for job in prometheus["scrape_configs"]}


def test_prometheus_scrapes_what_the_fraudgraph_processes_serve() -> None:
    from fraudgraph.cli import cli

    served = {param.default for name in ("project", "run")
              for param in cli.commands[name].params if param.name == "metrics_port"}
    assert len(served) == 2
    prometheus = yaml.safe_load((COMPOSE / "prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    targets = [t for config in jobs["fraudgraph"]["static_configs"] for t in config["targets"]]
    assert {int(t.rpartition(":")[2]) for t in targets} == served
    # The processes serve on 127.0.0.1 only (next test), which a container reaches
    # only from the host's network namespace: host networking, loopback targets.
    assert all(t.startswith("127.0.0.1:") for t in targets)
    services = compose_file()["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["network_mode"] == "host", name
        assert "ports" not in services[name], f"{name}: host networking publishes no ports"
    assert "--web.listen-address=127.0.0.1:9090" in services["prometheus"]["command"]
    assert jobs["prometheus"]["static_configs"][0]["targets"] == ["127.0.0.1:9090"]
    assert services["grafana"]["environment"]["GF_SERVER_HTTP_ADDR"] == "127.0.0.1"
    datasource = yaml.safe_load(
        (COMPOSE / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://127.0.0.1:9090"


def test_metrics_are_served_on_loopback_only() -> None:
    from fraudgraph import metrics

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = metrics.serve_with_health(port, lambda: (True, {}))
    assert server is not None
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.shutdown()
        server.server_close()


def compose_cli() -> Path:
    """The Docker Compose v2 CLI, built once from the Go module proxy into the cache.

    ``docker compose config`` parses, interpolates and validates the file against
    the Compose specification without a Docker engine.  The first call on a fresh
    machine builds it (a few minutes on 2 cores); later calls find the binary.
    """
    binary = COMPOSE_CACHE / "docker-compose"
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    go = shutil.which("go") or next(
        (str(p) for p in (Path("/usr/local/go/bin/go"),) if p.is_file()), None)
    assert go, "Go is needed to build the Compose CLI (the machine image has it: /usr/local/go)"
    COMPOSE_CACHE.mkdir(parents=True, exist_ok=True)
    with open(COMPOSE_CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second pytest waits for the first build
        if binary.is_file():
            return binary
        gobin = Path(tempfile.mkdtemp(prefix="bin-", dir=COMPOSE_CACHE))
        env = {**os.environ, "GOPATH": str(COMPOSE_CACHE / "gopath"), "GOBIN": str(gobin),
               "GOFLAGS": "-modcacherw -buildvcs=false", "CGO_ENABLED": "0"}
        result = subprocess.run([go, "install", COMPOSE_MODULE], capture_output=True, text=True,
                                env=env, timeout=1800, check=False)
        assert result.returncode == 0, f"go install {COMPOSE_MODULE}: {result.stderr[-2000:]}"
        (gobin / "cmd").rename(binary)
        shutil.rmtree(gobin, ignore_errors=True)
    return binary


def run_compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(compose_cli()), "-f", str(COMPOSE / "docker-compose.yml"), *args],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def test_docker_compose_config_accepts_the_file() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    result = run_compose("config", "-q", env={**env, **SECRETS_ENV})
    assert result.returncode == 0, result.stderr
    services = run_compose("config", "--services", env={**env, **SECRETS_ENV})
    assert set(services.stdout.split()) == set(compose_file()["services"]), services.stderr
    for var in SECRETS_ENV:
        missing = run_compose("config", "-q",
                              env={**env, **{k: v for k, v in SECRETS_ENV.items() if k != var}})
        assert missing.returncode != 0 and var in missing.stderr, (var, missing.stderr)
