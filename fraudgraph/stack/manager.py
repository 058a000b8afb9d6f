"""`fraudgraph stack up | down | status`: orchestration over the three services.

``up`` is idempotent: a running, healthy service is left alone, so a second
``up`` returns in about a second and changes nothing.  Services start
concurrently (the JVMs warm up in parallel) and ``up`` then waits for each to
really answer: Kafka metadata, Neo4j ``RETURN 1`` over Bolt with auth, SQL
``SELECT 1``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from fraudgraph.errors import FraudgraphError, StackError
from fraudgraph.settings import Settings, ensure_dev_secrets
from fraudgraph.stack import process
from fraudgraph.stack.java import find_java_home
from fraudgraph.stack.private import private_umask, secure_data_dir
from fraudgraph.stack.services import Report, Service, data_dir_group, services

PROBE_TIMEOUT = 3.0


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    ports: str
    pid: int | None
    health: str  # healthy | unhealthy | stopped
    detail: str
    log: Path


def up(settings: Settings, report: Report) -> tuple[Settings, list[ServiceStatus]]:
    """Start whatever is not running, wait until all answer, create topics and roles.

    The data folder is made private first (see :mod:`fraudgraph.stack.private`), and
    everything the stack writes or starts runs with umask 077.
    """
    _refuse_secured_kafka(settings)
    with private_umask():
        secure_data_dir(settings.data_dir, data_dir_group(settings))
        settings = ensure_dev_secrets(settings)
        java_home = find_java_home(settings.java_home)
        stack = services(settings, java_home, report)
        _start(stack, report)
        for svc in stack:
            _wait_ready(svc, report)
        for svc in stack:
            for item in svc.after_ready():
                report(f"{svc.name}: created {item}")
    return settings, [_status(svc) for svc in stack]


def _refuse_secured_kafka(settings: Settings) -> None:
    """The stack's own broker speaks PLAINTEXT on loopback (its trust boundary is the
    machine): settings meant for a secured, external broker do not belong to it."""
    protocol = settings.kafka.security_protocol
    if protocol != "PLAINTEXT":
        raise StackError(
            f"FRAUDGRAPH_KAFKA_SECURITY_PROTOCOL={protocol}, but the local stack's Kafka "
            "listens PLAINTEXT on 127.0.0.1 only: unset the FRAUDGRAPH_KAFKA_SECURITY_PROTOCOL, "
            "_SASL_* and _SSL_* settings to use it")


def _start(stack: list[Service], report: Report) -> None:
    to_start = []
    for svc in stack:
        if not svc.managed:
            report(f"{svc.name}: external, not managed by the stack")
        elif (pid := svc.pid()) is not None:
            report(f"{svc.name}: already running (pid {pid})")
        else:
            to_start.append(svc)
    # Check every port before starting anything, so a clash leaves nothing half-started.
    for svc in to_start:
        for port in svc.ports():
            if process.port_in_use(port.number):
                raise StackError(
                    f"{svc.name}: port {port.number} ({port.role}) is taken by another process; "
                    f"stop it or choose another port with {port.env}")
    for svc in to_start:
        svc.install()
        pid = svc.start()
        report(f"{svc.name}: started (pid {pid}), log {svc.log_path}")


def down(settings: Settings, report: Report) -> None:
    """Stop exactly the processes the stack started (by PID); data stays in place."""
    for svc in reversed(services(settings, None, report)):
        graceful = svc.stop()
        if graceful is None:
            report(f"{svc.name}: not running")
        else:
            report(f"{svc.name}: stopped" + ("" if graceful else " (killed after timeout)"))


def status(settings: Settings) -> list[ServiceStatus]:
    return [_status(svc) for svc in services(settings, None, lambda _msg: None)]


def _status(svc: Service) -> ServiceStatus:
    ports = ", ".join(f"{p.number} ({p.role})" for p in svc.ports()) or "external"
    pid = svc.pid()
    if svc.managed and pid is None:
        detail = ""
        taken = [p.number for p in svc.ports() if process.port_in_use(p.number)]
        if taken:
            detail = f"port {taken[0]} is answered by a process the stack did not start"
        return ServiceStatus(svc.name, ports, None, "stopped", detail, svc.log_path)
    try:
        detail = svc.check(PROBE_TIMEOUT)
        health = "healthy"
    except Exception as exc:  # any failure of the probe means "not healthy"
        detail = _one_line(exc)
        health = "unhealthy"
    return ServiceStatus(svc.name, ports, pid, health, detail, svc.log_path)


def _wait_ready(svc: Service, report: Report) -> None:
    started = time.monotonic()
    deadline = started + svc.start_timeout
    last_error = "no answer yet"
    while True:
        if svc.managed and svc.pid() is None:
            lines = " | ".join(process.tail(svc.log_path, 3))
            raise StackError(f"{svc.name} exited during start-up; see {svc.log_path} ({lines})")
        try:
            detail = svc.check(PROBE_TIMEOUT)
        except FraudgraphError:
            raise
        except Exception as exc:  # not ready yet: retried until the deadline
            last_error = _one_line(exc)
        else:
            report(f"{svc.name}: ready after {time.monotonic() - started:.1f}s ({detail})")
            return
        if time.monotonic() > deadline:
            raise StackError(f"{svc.name} did not answer within {svc.start_timeout:.0f}s "
                             f"({last_error}); see {svc.log_path}")
        time.sleep(0.5)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:200]
