"""The three services of the local stack: how each is installed, started and checked.

Each service keeps its state under ``<data_dir>/<name>/``, its console output
in ``<data_dir>/logs/<name>.log`` and its PID in ``<data_dir>/run/<name>.pid``.
``install`` and ``after_ready`` are idempotent; ``check`` is one health probe.
"""

from __future__ import annotations

import base64
import os
import pwd
import shutil
import signal
import subprocess
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from string import Template

from fraudgraph.errors import StackError
from fraudgraph.settings import Settings, require_secret
from fraudgraph.stack import RECIPES, process
from fraudgraph.stack.jars import ensure_jars
from fraudgraph.stack.private import PRIVATE_UMASK, java_argfile_quote, secret_file
from graph import driver as neo4j_driver
from ingest import kafka
from storage import postgres as store

Report = Callable[[str], None]


@dataclass(frozen=True)
class Port:
    number: int
    role: str  # e.g. "bolt"
    env: str  # the setting that moves it


class Service(ABC):
    """Base: PID bookkeeping and logs; subclasses say how to install, start and check."""

    name: str = ""
    stop_signal: int = signal.SIGTERM
    start_timeout: float = 120.0

    def __init__(self, settings: Settings, java_home: Path | None, report: Report) -> None:
        self.settings = settings
        self.java_home = java_home
        self.report = report
        self.home = settings.data_dir / self.name

    # -- bookkeeping --------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.settings.data_dir / "logs" / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.settings.data_dir / "run" / f"{self.name}.pid"

    @property
    def marker(self) -> str:
        """A string only this service's command line contains (its home folder)."""
        return str(self.home)

    @property
    def managed(self) -> bool:
        return True

    @abstractmethod
    def ports(self) -> list[Port]:
        """The ports this service listens on (empty if it is not ours to run)."""

    def pid(self) -> int | None:
        return process.running_pid(self.pid_file, self.marker)

    # -- lifecycle ----------------------------------------------------------
    def install(self) -> None:  # noqa: B027 - optional hook, most services need it
        """Fetch binaries and initialise storage if needed (idempotent)."""

    @abstractmethod
    def start(self) -> int:
        """Start the process detached and return its PID (install() ran before)."""

    @abstractmethod
    def check(self, timeout: float) -> str:
        """One health probe: return a short detail, raise if the service does not answer."""

    def after_ready(self) -> list[str]:
        """Idempotent set-up once the service answers; returns what it created."""
        return []

    def stop(self, timeout: float = 60.0) -> bool | None:
        """Stop our process by PID; None if it was not running."""
        pid = self.pid()
        if pid is None:
            return None
        graceful = process.stop(pid, self.stop_signal, timeout)
        self.pid_file.unlink(missing_ok=True)
        return graceful

    def java(self) -> str:
        assert self.java_home is not None, "JVM services need a java_home"
        return str(self.java_home / "bin" / "java")

    def render(self, template: str, target: Path, **values: object) -> Path:
        text = Template((RECIPES / template).read_text()).substitute(
            {k: str(v) for k, v in values.items()})
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return target


class KafkaService(Service):
    name = "kafka"
    start_timeout = 90.0

    def ports(self) -> list[Port]:
        k = self.settings.kafka
        return [Port(k.port, "broker", "FRAUDGRAPH_KAFKA_PORT"),
                Port(k.controller_port, "controller", "FRAUDGRAPH_KAFKA_CONTROLLER_PORT")]

    @property
    def config_path(self) -> Path:
        return self.home / "server.properties"

    @property
    def marker(self) -> str:
        return str(self.config_path)

    def install(self) -> None:
        assert self.java_home is not None
        self.lib = ensure_jars("kafka", self.settings.cache_dir, self.java_home, self.report)
        k = self.settings.kafka
        log_dirs = self.home / "data"
        self.render("kafka-server.properties", self.config_path, port=k.port,
                    controller_port=k.controller_port, log_dirs=log_dirs,
                    partitions=k.partitions)
        shutil.copyfile(RECIPES / "kafka-log4j.properties", self.home / "log4j.properties")
        if not (log_dirs / "meta.properties").exists():
            self.report("kafka: formatting KRaft storage")
            result = subprocess.run(
                [self.java(), "-cp", f"{self.lib}/*",
                 f"-Dlog4j.configuration=file:{self.home / 'log4j.properties'}",
                 "kafka.tools.StorageTool", "format", "--ignore-formatted",
                 "-t", _kafka_cluster_id(), "-c", str(self.config_path)],
                capture_output=True, text=True, umask=PRIVATE_UMASK, check=False)
            if result.returncode != 0:
                raise StackError(f"kafka: storage format failed: {result.stderr.strip()[-300:]}")

    def start(self) -> int:
        argv = [self.java(), "-Xms128m", f"-Xmx{self.settings.kafka.heap}", "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                f"-Dlog4j.configuration=file:{self.home / 'log4j.properties'}",
                "-cp", f"{self.lib}/*", "kafka.Kafka", str(self.config_path)]
        return process.start(argv, log_path=self.log_path, pid_file=self.pid_file, cwd=self.home)

    def check(self, timeout: float) -> str:
        brokers = kafka.broker_count(self.settings.kafka.bootstrap, timeout=timeout)
        if brokers < 1:
            raise StackError("kafka: metadata lists no broker")
        return f"{brokers} broker"

    def after_ready(self) -> list[str]:
        created = kafka.ensure_topics(self.settings.kafka.bootstrap, self.settings.topics.all(),
                                      self.settings.kafka.partitions)
        return [f"topic:{name}" for name in created]


def _kafka_cluster_id() -> str:
    """A KRaft cluster id: a random UUID as URL-safe base64 without padding, like Kafka's."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


class Neo4jService(Service):
    name = "neo4j"
    start_timeout = 180.0

    def ports(self) -> list[Port]:
        n = self.settings.neo4j
        return [Port(n.bolt_port, "bolt", "FRAUDGRAPH_NEO4J_BOLT_PORT"),
                Port(n.http_port, "http", "FRAUDGRAPH_NEO4J_HTTP_PORT")]

    def _env(self) -> dict[str, str]:
        return {**os.environ, "NEO4J_HOME": str(self.home), "NEO4J_CONF": str(self.home / "conf"),
                "JAVA_HOME": str(self.java_home)}

    def install(self) -> None:
        assert self.java_home is not None
        self.lib = ensure_jars("neo4j", self.settings.cache_dir, self.java_home, self.report)
        n = self.settings.neo4j
        for sub in ("conf", "data", "logs", "plugins", "run", "import"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        self.render("neo4j.conf", self.home / "conf" / "neo4j.conf", home=self.home,
                    bolt_port=n.bolt_port, http_port=n.http_port, pagecache=n.pagecache)
        if not (self.home / "data" / "databases" / "system").exists():
            # The initial password must be set before the very first start.
            self.report("neo4j: setting the generated initial password")
            self._set_initial_password(require_secret(n.password, "FRAUDGRAPH_NEO4J_PASSWORD"))

    def _set_initial_password(self, password: str) -> None:
        """``neo4j-admin dbms set-initial-password``, the password never on a command line.

        A command line is anyone's to read (``/proc/<pid>/cmdline``), so the main class and
        its arguments go to the java launcher in a private argument file (``@file``).
        """
        args = ("org.neo4j.server.startup.Neo4jAdminCommand dbms set-initial-password "
                + java_argfile_quote(password))
        with secret_file(args, name="set-initial-password.args") as argfile:
            result = subprocess.run(
                [self.java(), "-cp", f"{self.lib}/*", f"@{argfile}"],
                capture_output=True, text=True, env=self._env(), cwd=self.home,
                umask=PRIVATE_UMASK, check=False)
        if result.returncode != 0:
            raise StackError("neo4j: set-initial-password failed: "
                             + (result.stderr.strip().splitlines() or ["no output"])[-1][:300])

    def start(self) -> int:
        argv = [self.java(), "-Xms256m", f"-Xmx{self.settings.neo4j.heap}", "-XX:+UseG1GC",
                "-XX:-OmitStackTraceInFastThrow",
                "--add-opens=java.base/java.nio=ALL-UNNAMED",
                "--add-opens=java.base/java.io=ALL-UNNAMED",
                "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
                "--enable-native-access=ALL-UNNAMED",
                "-Dio.netty.tryReflectionSetAccessible=true", "-Dlog4j2.disable.jmx=true",
                "-Dfile.encoding=UTF-8",
                "-cp", f"{self.home}/plugins/*:{self.home}/conf/*:{self.lib}/*",
                "org.neo4j.server.CommunityEntryPoint",
                f"--home-dir={self.home}", f"--config-dir={self.home / 'conf'}", "--console-mode"]
        return process.start(argv, log_path=self.log_path, pid_file=self.pid_file,
                             cwd=self.home, env=self._env())

    def check(self, timeout: float) -> str:
        n = self.settings.neo4j
        password = require_secret(n.password, "FRAUDGRAPH_NEO4J_PASSWORD")
        try:
            neo4j_driver.ping(n.uri, n.user, password, timeout=timeout)
        except neo4j_driver.AuthError:
            raise StackError(
                "neo4j: the password in secrets.env / FRAUDGRAPH_NEO4J_PASSWORD is not the "
                f"database's; restore it, or remove {self.home / 'data'} to start afresh"
            ) from None
        return "bolt RETURN 1 ok"


class PostgresService(Service):
    """A private cluster from the OS packages, run as the `postgres` user when we are root."""

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: SIGTERM would wait for clients
    start_timeout = 60.0

    def ports(self) -> list[Port]:
        return [Port(self.settings.postgres.port, "sql", "FRAUDGRAPH_POSTGRES_PORT")]

    @property
    def pgdata(self) -> Path:
        return self.home / "data"

    @property
    def run_as(self) -> str | None:
        return "postgres" if os.geteuid() == 0 else None

    def install(self) -> None:
        self.bindir = _postgres_bindir()
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            os.chown(self.home, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
            os.chmod(self.home, 0o700, follow_symlinks=False)
            # as the server will run: that user and its own group only
            probe = subprocess.run(["test", "-w", str(self.home)], user=self.run_as,
                                   group=self.run_as, extra_groups=[], check=False)
            if probe.returncode != 0:
                raise StackError(
                    f"postgres: the `postgres` user cannot reach {self.home}; "
                    "set FRAUDGRAPH_DATA_DIR to a folder outside a private home directory")
        if (self.pgdata / "PG_VERSION").exists():
            return
        self.report("postgres: initdb (private cluster)")
        self._initdb()

    def _initdb(self) -> None:
        """initdb the cluster with the superuser password from a one-off file.

        The file is written into a fresh folder of ours (never into ``postgres/``, which
        the `postgres` user owns and could plant a link in), readable by that user only.
        """
        superuser_password = require_secret(self.settings.postgres.superuser_password,
                                            "FRAUDGRAPH_POSTGRES_SUPERUSER_PASSWORD")
        with secret_file(superuser_password, reader=self.run_as, name="initdb.pw") as pwfile:
            result = subprocess.run(
                [str(self.bindir / "initdb"), "-D", str(self.pgdata), "-U", "postgres",
                 "--auth=scram-sha-256", f"--pwfile={pwfile}", "--encoding=UTF8", "--no-locale"],
                capture_output=True, text=True, user=self.run_as, group=self.run_as,
                extra_groups=[] if self.run_as else None, cwd=self.home, umask=PRIVATE_UMASK,
                check=False)
        if result.returncode != 0:
            raise StackError(f"postgres: initdb failed: {result.stderr.strip()[-300:]}")

    def start(self) -> int:
        socket_dir = self.home  # unix socket beside the cluster, not in /var/run
        argv = [str(self.bindir / "postgres"), "-D", str(self.pgdata),
                "-p", str(self.settings.postgres.port), "-k", str(socket_dir),
                "-c", "listen_addresses=127.0.0.1", "-c", "shared_buffers=128MB",
                "-c", "max_connections=100", "-c", "logging_collector=off"]
        return process.start(argv, log_path=self.log_path, pid_file=self.pid_file,
                             cwd=self.home, user=self.run_as)

    def superuser_dsn(self) -> str:
        password = require_secret(self.settings.postgres.superuser_password,
                                  "FRAUDGRAPH_POSTGRES_SUPERUSER_PASSWORD")
        return (f"host=127.0.0.1 port={self.settings.postgres.port} dbname=postgres "
                f"user=postgres password={password} connect_timeout=5")

    def check(self, timeout: float) -> str:
        try:
            store.ping(self.settings.postgres.dsn())
        except store.OperationalError as exc:
            if "does not exist" not in str(exc) and "authentication failed" not in str(exc):
                raise
            # Server up, application role/database not provisioned yet.
            store.ping(self.superuser_dsn())
            return "SELECT 1 ok (as postgres; role not provisioned yet)"
        return f"SELECT 1 ok as {self.settings.postgres.user}"

    def after_ready(self) -> list[str]:
        pg = self.settings.postgres
        password = require_secret(pg.password, "FRAUDGRAPH_POSTGRES_PASSWORD")
        created = store.provision(self.superuser_dsn(), pg.user, password, pg.database)
        try:
            store.ping(pg.dsn())
        except store.OperationalError:
            raise StackError(
                f"postgres: role {pg.user!r} exists but does not accept the password in "
                "secrets.env / FRAUDGRAPH_POSTGRES_PASSWORD; restore it, or remove "
                f"{self.pgdata} to start afresh") from None
        return [f"postgres {item}" for item in created]


class ExternalPostgres(Service):
    """An existing server named by FRAUDGRAPH_POSTGRES_DSN: checked, never started or stopped."""

    name = "postgres"

    @property
    def managed(self) -> bool:
        return False

    def ports(self) -> list[Port]:
        return []

    def pid(self) -> int | None:
        return None

    def start(self) -> int:
        raise StackError("postgres is external (FRAUDGRAPH_POSTGRES_DSN): the stack does not "
                         "start it")

    def check(self, timeout: float) -> str:
        store.ping(self.settings.postgres.dsn())
        return "external server, SELECT 1 ok"

    def stop(self, timeout: float = 60.0) -> bool | None:
        return None


def _postgres_bindir() -> Path:
    """The newest PostgreSQL server binaries from the OS packages."""
    root = Path("/usr/lib/postgresql")
    versions = sorted((p for p in root.glob("*/bin") if (p / "postgres").exists()),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if versions:
        return versions[-1]
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise StackError("PostgreSQL server binaries not found: run `apt-get install postgresql` "
                     "(scripts/bootstrap.sh does this) or set FRAUDGRAPH_POSTGRES_DSN")


def data_dir_group(settings: Settings) -> int | None:
    """The group that must traverse the data folder: the `postgres` user's when we are
    root and a private cluster runs as that user from this folder, or will (None:
    nobody else's business).  A folder that holds a cluster keeps the way in even when
    this invocation points at an external server (`FRAUDGRAPH_POSTGRES_DSN`): the
    running cluster would otherwise lose its own data folder."""
    if os.geteuid() != 0:
        return None
    if not settings.postgres.managed and not (settings.data_dir / "postgres").exists():
        return None
    try:
        return pwd.getpwnam("postgres").pw_gid
    except KeyError:  # not installed yet; `up` says so when it installs the service
        return None


def services(settings: Settings, java_home: Path | None, report: Report) -> list[Service]:
    pg: Service = (PostgresService(settings, java_home, report) if settings.postgres.managed
                   else ExternalPostgres(settings, java_home, report))
    return [KafkaService(settings, java_home, report), Neo4jService(settings, java_home, report),
            pg]
