"""compose/: the docker-compose file and its Prometheus/Grafana configs are consistent.

The structure is always checked here; where the docker CLI has its compose plugin,
`docker compose config` validates the file as well.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from fraudgraph.settings import load_settings

COMPOSE = Path(__file__).parents[2] / "compose"
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


def test_docker_compose_config_accepts_the_file_where_available() -> None:
    docker = shutil.which("docker")
    probe = (subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
             if docker else None)
    if probe is None or probe.returncode != 0:
        # No compose plugin on this machine (the case on the CI machines): the
        # structural checks above are what validates the file here.
        return
    result = subprocess.run(
        [str(docker), "compose", "-f", str(COMPOSE / "docker-compose.yml"), "config", "-q"],
        capture_output=True, text=True, env={**os.environ, **SECRETS_ENV}, check=False)
    assert result.returncode == 0, result.stderr
    missing = subprocess.run(
        [str(docker), "compose", "-f", str(COMPOSE / "docker-compose.yml"), "config", "-q"],
        capture_output=True, text=True,
        env={k: v for k, v in os.environ.items() if k not in SECRETS_ENV}, check=False)
    assert missing.returncode != 0 and "FRAUDGRAPH_NEO4J_PASSWORD" in missing.stderr
