"""Pure pieces of the local stack: Java version parsing, PID checks, config rendering."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fraudgraph.settings import load_settings
from fraudgraph.stack import RECIPES, process
from fraudgraph.stack.jars import REQUIRED_ENTRIES, jar_dir
from fraudgraph.stack.java import major_version
from fraudgraph.stack.services import KafkaService, Neo4jService, _kafka_cluster_id


@pytest.mark.parametrize(("output", "major"), [
    ('openjdk version "17.0.15" 2025-04-15', 17),
    ('openjdk version "21.0.2" 2024-01-16', 21),
    ('java version "1.8.0_392"', 8),
    ('openjdk version "25" 2025-09-16', 25),
    ("no java here", None),
])
def test_java_major_version(output: str, major: int | None) -> None:
    assert major_version(output) == major


def test_running_pid_requires_the_marker(tmp_path: Path) -> None:
    marker = str(tmp_path / "marker-dir")
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])
    pid_file = tmp_path / "svc.pid"
    try:
        pid_file.write_text(f"{proc.pid}\n")
        assert process.running_pid(pid_file, marker) == proc.pid
        assert process.running_pid(pid_file, str(tmp_path / "other")) is None
        assert process.stop(proc.pid, signal.SIGTERM, timeout=5) is True
        assert process.running_pid(pid_file, marker) is None  # gone (and reaped)
    finally:
        proc.kill()
        proc.wait()


def test_stale_or_garbage_pid_files_mean_not_running(tmp_path: Path) -> None:
    pid_file = tmp_path / "svc.pid"
    assert process.running_pid(pid_file, "x") is None  # missing
    pid_file.write_text("not-a-pid\n")
    assert process.running_pid(pid_file, "x") is None
    pid_file.write_text("4194303\n")  # above any real PID
    assert process.running_pid(pid_file, "x") is None


def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c",
                             "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
                             "print('ready', flush=True); time.sleep(60)"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    assert process.stop(proc.pid, signal.SIGTERM, timeout=0.5) is False
    assert not process.alive(proc.pid)  # killed (and reaped by stop)


def test_tail_returns_last_lines(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text("".join(f"line {i}\n" for i in range(100)))
    assert process.tail(path, 3) == ["line 97", "line 98", "line 99"]
    assert process.tail(tmp_path / "missing.log") == []


def test_configs_render_with_the_settings(tmp_path: Path) -> None:
    settings = load_settings({"FRAUDGRAPH_DATA_DIR": str(tmp_path),
                              "FRAUDGRAPH_KAFKA_PORT": "19092",
                              "FRAUDGRAPH_NEO4J_BOLT_PORT": "17687",
                              "FRAUDGRAPH_NEO4J_PAGECACHE": "64m"})
    kafka = KafkaService(settings, None, lambda _m: None)
    text = kafka.render("kafka-server.properties", tmp_path / "k.properties", port=19092,
                        controller_port=19093, log_dirs=tmp_path / "k", partitions=3).read_text()
    assert "listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093" in text
    assert "num.partitions=3" in text and "$" not in text
    neo = Neo4jService(settings, None, lambda _m: None)
    conf = neo.render("neo4j.conf", tmp_path / "neo4j.conf", home=neo.home, bolt_port=17687,
                      http_port=7474, pagecache="64m").read_text()
    assert "server.bolt.listen_address=127.0.0.1:17687" in conf
    assert "server.memory.pagecache.size=64m" in conf
    assert "dbms.security.auth_enabled=true" in conf and "$" not in conf


def test_kraft_cluster_ids_look_like_kafkas() -> None:
    ids = {_kafka_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)


def test_jar_cache_folder_follows_the_pom(tmp_path: Path) -> None:
    assert jar_dir("kafka", tmp_path) != jar_dir("neo4j", tmp_path)
    assert jar_dir("kafka", tmp_path) == jar_dir("kafka", tmp_path)
    for name in REQUIRED_ENTRIES:
        assert (RECIPES / f"{name}.pom.xml").exists()
        assert (RECIPES / f"{name}.jars.txt").exists()
