"""Settings, read once from the environment into frozen, typed objects.

Every option has a documented default and a ``FRAUDGRAPH_*`` environment
variable (see ``ENV_DOCS``).  Secrets (passwords) come from the environment
or from ``<data_dir>/secrets.env`` (mode 0600); they have no working default
outside the local ``dev`` profile, where ``fraudgraph stack up`` generates them.
Packages never read ``os.environ``: the CLI calls :func:`load_settings` once
and passes the result down.
"""

from __future__ import annotations

import ipaddress
import os
import secrets as _secrets
import stat
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from fraudgraph.errors import ConfigError

PROFILES = ("dev", "prod")
#: FRAUDGRAPH_GRAPH_DETAIL's values, the default first
DETAIL_MODES = ("all", "flagged")
SECRETS_FILE = "secrets.env"
#: Passwords that are never accepted, whatever the profile.
DEFAULT_PASSWORDS = frozenset({"", "neo4j", "password", "postgres", "fraudgraph", "changeme"})

#: Every environment variable the settings read, with its default and meaning.
#: ``--help`` texts and the README are generated from / checked against this.
ENV_DOCS: dict[str, tuple[str, str]] = {
    "FRAUDGRAPH_PROFILE": ("dev", "dev (local stack, generated secrets) or prod"),
    "FRAUDGRAPH_DATA_DIR": (
        "~/.local/share/fraudgraph (root: /var/lib/fraudgraph)",
        "stack state: service data, logs, PID files, secrets.env",
    ),
    "FRAUDGRAPH_CACHE_DIR": ("~/.cache/fraudgraph", "downloaded jars and Maven repository"),
    "FRAUDGRAPH_JAVA_HOME": ("auto: a Java 17 or 21 under /usr/lib/jvm", "JDK for Kafka and Neo4j"),
    "FRAUDGRAPH_KAFKA_PORT": ("9092", "Kafka broker port (loopback)"),
    "FRAUDGRAPH_KAFKA_CONTROLLER_PORT": ("9093", "Kafka KRaft controller port"),
    "FRAUDGRAPH_KAFKA_BOOTSTRAP": ("127.0.0.1:$FRAUDGRAPH_KAFKA_PORT", "Kafka bootstrap servers"),
    "FRAUDGRAPH_KAFKA_PARTITIONS": ("4", "partitions of each topic the stack creates"),
    "FRAUDGRAPH_KAFKA_HEAP": ("512m", "Kafka JVM max heap"),
    "FRAUDGRAPH_KAFKA_SECURITY_PROTOCOL": (
        "PLAINTEXT", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL; prod refuses an unencrypted "
        "one to a broker that is not on loopback"),
    "FRAUDGRAPH_KAFKA_SASL_MECHANISM": (
        "unset", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* protocols)"),
    "FRAUDGRAPH_KAFKA_SASL_USERNAME": ("unset", "SASL user name (SASL_* protocols)"),
    "FRAUDGRAPH_KAFKA_SASL_PASSWORD": ("unset", "SASL password (secret; SASL_* protocols)"),
    "FRAUDGRAPH_KAFKA_SSL_CA_LOCATION": (
        "unset: the system's CA certificates", "PEM file of the CA that signed the broker's "
        "certificate (SSL, SASL_SSL)"),
    "FRAUDGRAPH_KAFKA_SSL_CERTIFICATE_LOCATION": (
        "unset", "PEM client certificate, for brokers that require mutual TLS"),
    "FRAUDGRAPH_KAFKA_SSL_KEY_LOCATION": ("unset", "PEM private key of the client certificate"),
    "FRAUDGRAPH_KAFKA_SSL_KEY_PASSWORD": ("unset", "passphrase of that private key (secret)"),
    "FRAUDGRAPH_NEO4J_BOLT_PORT": ("7687", "Neo4j Bolt port"),
    "FRAUDGRAPH_NEO4J_HTTP_PORT": ("7474", "Neo4j HTTP port (Neo4j Browser at /browser/)"),
    "FRAUDGRAPH_NEO4J_URI": ("bolt://127.0.0.1:$FRAUDGRAPH_NEO4J_BOLT_PORT", "Neo4j Bolt URI"),
    "FRAUDGRAPH_NEO4J_USER": ("neo4j", "Neo4j user"),
    "FRAUDGRAPH_NEO4J_PASSWORD": ("dev: generated into secrets.env", "Neo4j password (secret)"),
    "FRAUDGRAPH_NEO4J_HEAP": ("2g", "Neo4j JVM max heap"),
    "FRAUDGRAPH_NEO4J_PAGECACHE": ("2g", "Neo4j page cache size"),
    "FRAUDGRAPH_GRAPH_DETAIL": (
        "all", "all: the projection writes a Transaction node per transaction; flagged: "
        "only the daemon writes them, for review/block decisions (the aggregates hold the "
        "rest; about half the projection's Neo4j cost)"),
    "FRAUDGRAPH_POSTGRES_PORT": ("5433", "port of the stack's private PostgreSQL cluster"),
    "FRAUDGRAPH_POSTGRES_DSN": (
        "unset: use the stack's private cluster",
        "libpq DSN of an existing server; the stack then does not manage PostgreSQL",
    ),
    "FRAUDGRAPH_POSTGRES_USER": ("fraudgraph", "PostgreSQL role"),
    "FRAUDGRAPH_POSTGRES_DB": ("fraudgraph", "PostgreSQL database"),
    "FRAUDGRAPH_POSTGRES_SCHEMA": ("public", "schema of the blocklist tables (created if missing)"),
    "FRAUDGRAPH_POSTGRES_PASSWORD": (
        "dev: generated into secrets.env", "PostgreSQL password (secret)"),
    "FRAUDGRAPH_DEFAULT_CURRENCY": ("USD", "currency of transactions that name none"),
    "FRAUDGRAPH_MAX_AMOUNT": ("1000000", "larger amounts (USD at reference rates) go to the DLQ"),
    "FRAUDGRAPH_MAX_MESSAGE_BYTES": ("65536", "larger messages are rejected to the DLQ"),
    "FRAUDGRAPH_TOPIC_TRANSACTIONS": ("transactions", "input topic"),
    "FRAUDGRAPH_TOPIC_DECISIONS": ("decisions", "one decision per transaction"),
    "FRAUDGRAPH_TOPIC_ALERTS": ("fraud-alerts", "review/block decisions"),
    "FRAUDGRAPH_TOPIC_TRAINING": ("training", "transactions judged valid"),
    "FRAUDGRAPH_TOPIC_LABELS": ("fraud-labels", "late fraud/genuine feedback"),
    "FRAUDGRAPH_TOPIC_DLQ": ("transactions-dlq", "rejected input"),
}


@dataclass(frozen=True)
class Topics:
    transactions: str = "transactions"
    decisions: str = "decisions"
    alerts: str = "fraud-alerts"
    training: str = "training"
    labels: str = "fraud-labels"
    dlq: str = "transactions-dlq"

    def all(self) -> tuple[str, ...]:
        return (self.transactions, self.decisions, self.alerts,
                self.training, self.labels, self.dlq)


KAFKA_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
KAFKA_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSettings:
    port: int = 9092
    controller_port: int = 9093
    bootstrap: str = "127.0.0.1:9092"
    partitions: int = 4
    heap: str = "512m"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: str | None = field(default=None, repr=False)

    def client_security(self) -> dict[str, str]:
        """The ``security.protocol``, ``sasl.*`` and ``ssl.*`` settings (librdkafka names)
        that every Kafka client gets. Holds the passwords: never log it."""
        named = {
            "security.protocol": self.security_protocol,
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password,
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.key.password": self.ssl_key_password,
        }
        return {key: value for key, value in named.items() if value is not None}


@dataclass(frozen=True)
class Neo4jSettings:
    bolt_port: int = 7687
    http_port: int = 7474
    uri: str = "bolt://127.0.0.1:7687"
    user: str = "neo4j"
    password: str | None = field(default=None, repr=False)
    heap: str = "2g"  # 512m / 256m: the projection 12 % slower (bench-projection, 3 runs each)
    pagecache: str = "2g"
    #: which transactions get a Transaction node: "all" (the projection writes each) or
    #: "flagged" (the daemon writes those it reviews or blocks, with the decision)
    detail: str = "all"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


@dataclass(frozen=True)
class PostgresSettings:
    port: int = 5433
    user: str = "fraudgraph"
    database: str = "fraudgraph"
    password: str | None = field(default=None, repr=False)
    superuser_password: str | None = field(default=None, repr=False)
    external_dsn: str | None = field(default=None, repr=False)
    schema: str = "public"  # where the blocklist tables live

    @property
    def managed(self) -> bool:
        """True when the local stack runs its own PostgreSQL cluster."""
        return self.external_dsn is None

    def dsn(self) -> str:
        """libpq connection string (contains the password: never log it)."""
        if self.external_dsn:
            return self.external_dsn
        password = require_secret(self.password, "FRAUDGRAPH_POSTGRES_PASSWORD")
        return (f"host=127.0.0.1 port={self.port} dbname={self.database} "
                f"user={self.user} password={password} connect_timeout=5")


@dataclass(frozen=True)
class IngestSettings:
    default_currency: str = "USD"
    max_amount: float = 1_000_000.0
    max_message_bytes: int = 64 * 1024


@dataclass(frozen=True)
class Settings:
    profile: str
    data_dir: Path
    cache_dir: Path
    java_home: Path | None
    kafka: KafkaSettings
    neo4j: Neo4jSettings
    postgres: PostgresSettings
    topics: Topics
    ingest: IngestSettings = IngestSettings()

    @property
    def secrets_path(self) -> Path:
        return self.data_dir / SECRETS_FILE


def require_secret(value: str | None, env_name: str) -> str:
    """Return ``value`` or raise a ConfigError that says where to set it."""
    if value is None:
        raise ConfigError(
            f"{env_name} is not set: export it, or put it in <data_dir>/{SECRETS_FILE} "
            "(mode 0600); in the dev profile `fraudgraph stack up` generates it")
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """The variable's value, one of ``choices`` (unset or empty: the first)."""
    raw = env.get(name) or choices[0]
    if raw not in choices:
        raise ConfigError(f"{name}={raw!r}: expected one of {', '.join(choices)}")
    return raw


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be positive")
    return value


def default_data_dir(env: Mapping[str, str]) -> Path:
    # PostgreSQL refuses to run as root, so as root its cluster runs as the
    # `postgres` user, which must be able to reach the data folder: /root is 0700.
    if os.geteuid() == 0:
        return Path("/var/lib/fraudgraph")
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "fraudgraph"


def read_secrets_file(path: Path) -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines; refuse a file that others can read."""
    if not path.exists():
        return {}
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"{path} has mode {mode:04o}: secrets must not be readable by others; "
            f"run `chmod 600 {path}`")
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE")
        values[key.strip()] = value.strip()
    return values


def write_secrets_file(path: Path, values: Mapping[str, str]) -> None:
    """Write secrets atomically with mode 0600 (never readable by others, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("# fraudgraph secrets, generated; keep mode 0600\n")
        for key in sorted(values):
            handle.write(f"{key}={values[key]}\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _check_password(value: str | None, env_name: str) -> None:
    if value is not None and value.lower() in DEFAULT_PASSWORDS:
        raise ConfigError(f"{env_name} is a default or empty password; choose another")


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from ``env`` (default: the process environment) and secrets.env."""
    env = dict(os.environ if env is None else env)
    profile = env.get("FRAUDGRAPH_PROFILE", "dev")
    if profile not in PROFILES:
        raise ConfigError(f"FRAUDGRAPH_PROFILE={profile!r}: expected one of {', '.join(PROFILES)}")
    data_dir = Path(env.get("FRAUDGRAPH_DATA_DIR") or default_data_dir(env)).expanduser()
    cache_dir = Path(env.get("FRAUDGRAPH_CACHE_DIR")
                     or Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fraudgraph"
                     ).expanduser()
    file_secrets = read_secrets_file(data_dir / SECRETS_FILE)

    def secret(key: str) -> str | None:
        value = env.get(f"FRAUDGRAPH_{key}") or file_secrets.get(key)
        _check_password(value, f"FRAUDGRAPH_{key}")
        return value

    kafka = _kafka_settings(env, secret)
    _check_kafka_transport(profile, kafka)
    bolt_port = _int(env, "FRAUDGRAPH_NEO4J_BOLT_PORT", 7687)
    neo4j = Neo4jSettings(
        bolt_port=bolt_port,
        http_port=_int(env, "FRAUDGRAPH_NEO4J_HTTP_PORT", 7474),
        uri=env.get("FRAUDGRAPH_NEO4J_URI") or f"bolt://127.0.0.1:{bolt_port}",
        user=env.get("FRAUDGRAPH_NEO4J_USER", "neo4j"),
        password=secret("NEO4J_PASSWORD"),
        heap=env.get("FRAUDGRAPH_NEO4J_HEAP", "2g"),
        pagecache=env.get("FRAUDGRAPH_NEO4J_PAGECACHE", "2g"),
        detail=_choice(env, "FRAUDGRAPH_GRAPH_DETAIL", DETAIL_MODES),
    )
    postgres = PostgresSettings(
        port=_int(env, "FRAUDGRAPH_POSTGRES_PORT", 5433),
        user=env.get("FRAUDGRAPH_POSTGRES_USER", "fraudgraph"),
        database=env.get("FRAUDGRAPH_POSTGRES_DB", "fraudgraph"),
        password=secret("POSTGRES_PASSWORD"),
        superuser_password=secret("POSTGRES_SUPERUSER_PASSWORD"),
        external_dsn=env.get("FRAUDGRAPH_POSTGRES_DSN") or None,
        schema=env.get("FRAUDGRAPH_POSTGRES_SCHEMA", "public"),
    )
    topics = Topics(**{
        name: env.get(f"FRAUDGRAPH_TOPIC_{name.upper()}") or default
        for name, default in Topics().__dict__.items()
    })
    ingest = IngestSettings(
        default_currency=env.get("FRAUDGRAPH_DEFAULT_CURRENCY", "USD").upper(),
        max_amount=float(_int(env, "FRAUDGRAPH_MAX_AMOUNT", 1_000_000)),
        max_message_bytes=_int(env, "FRAUDGRAPH_MAX_MESSAGE_BYTES", 64 * 1024),
    )
    java_home = env.get("FRAUDGRAPH_JAVA_HOME")
    return Settings(
        profile=profile, data_dir=data_dir, cache_dir=cache_dir,
        java_home=Path(java_home) if java_home else None,
        kafka=kafka, neo4j=neo4j, postgres=postgres, topics=topics, ingest=ingest,
    )


def _kafka_settings(env: Mapping[str, str], secret: Callable[[str], str | None]
                    ) -> KafkaSettings:
    """The Kafka part of :func:`load_settings`: ports, bootstrap, and the client security."""
    def optional(name: str) -> str | None:
        return env.get(name) or None

    kafka_port = _int(env, "FRAUDGRAPH_KAFKA_PORT", 9092)
    protocol = (env.get("FRAUDGRAPH_KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT").upper()
    mechanism = optional("FRAUDGRAPH_KAFKA_SASL_MECHANISM")
    kafka = KafkaSettings(
        port=kafka_port,
        controller_port=_int(env, "FRAUDGRAPH_KAFKA_CONTROLLER_PORT", 9093),
        bootstrap=env.get("FRAUDGRAPH_KAFKA_BOOTSTRAP") or f"127.0.0.1:{kafka_port}",
        partitions=_int(env, "FRAUDGRAPH_KAFKA_PARTITIONS", 4),
        heap=env.get("FRAUDGRAPH_KAFKA_HEAP", "512m"),
        security_protocol=protocol,
        sasl_mechanism=mechanism.upper() if mechanism else None,
        sasl_username=optional("FRAUDGRAPH_KAFKA_SASL_USERNAME"),
        sasl_password=secret("KAFKA_SASL_PASSWORD"),
        ssl_ca_location=optional("FRAUDGRAPH_KAFKA_SSL_CA_LOCATION"),
        ssl_certificate_location=optional("FRAUDGRAPH_KAFKA_SSL_CERTIFICATE_LOCATION"),
        ssl_key_location=optional("FRAUDGRAPH_KAFKA_SSL_KEY_LOCATION"),
        ssl_key_password=secret("KAFKA_SSL_KEY_PASSWORD"),
    )
    _check_kafka_security(kafka)
    return kafka


def _check_kafka_security(kafka: KafkaSettings) -> None:
    """The security settings must fit the protocol: none is set that it would ignore."""
    protocol = kafka.security_protocol
    where = f"FRAUDGRAPH_KAFKA_SECURITY_PROTOCOL={protocol}"
    if protocol not in KAFKA_PROTOCOLS:
        raise ConfigError(f"{where}: expected one of {', '.join(KAFKA_PROTOCOLS)}")
    sasl = {"SASL_MECHANISM": kafka.sasl_mechanism, "SASL_USERNAME": kafka.sasl_username,
            "SASL_PASSWORD": kafka.sasl_password}
    ssl = {"SSL_CA_LOCATION": kafka.ssl_ca_location,
           "SSL_CERTIFICATE_LOCATION": kafka.ssl_certificate_location,
           "SSL_KEY_LOCATION": kafka.ssl_key_location, "SSL_KEY_PASSWORD": kafka.ssl_key_password}
    for group, used in ((sasl, protocol.startswith("SASL_")), (ssl, protocol.endswith("SSL"))):
        for key, value in group.items():
            if value is not None and not used:
                raise ConfigError(f"FRAUDGRAPH_KAFKA_{key} is set but {where} does not use it")
    if protocol.startswith("SASL_"):
        for key, value in sasl.items():
            if value is None:
                raise ConfigError(f"FRAUDGRAPH_KAFKA_{key} is not set, and {where} needs it"
                                  + (" (env or secrets.env)" if key == "SASL_PASSWORD" else ""))
        if kafka.sasl_mechanism not in KAFKA_SASL_MECHANISMS:
            raise ConfigError(f"FRAUDGRAPH_KAFKA_SASL_MECHANISM={kafka.sasl_mechanism}: "
                              f"expected one of {', '.join(KAFKA_SASL_MECHANISMS)}")


def _check_kafka_transport(profile: str, kafka: KafkaSettings) -> None:
    """prod: card transactions never cross a network unencrypted."""
    if profile != "prod" or kafka.security_protocol not in ("PLAINTEXT", "SASL_PLAINTEXT"):
        return
    remote = [host for host in broker_hosts(kafka.bootstrap) if not is_loopback(host)]
    if remote:
        raise ConfigError(
            f"FRAUDGRAPH_KAFKA_SECURITY_PROTOCOL={kafka.security_protocol} would send "
            f"transactions unencrypted to {remote[0]}, and the prod profile refuses that: "
            "set FRAUDGRAPH_KAFKA_SECURITY_PROTOCOL=SASL_SSL (or SSL) and "
            "FRAUDGRAPH_KAFKA_SSL_CA_LOCATION")


def broker_hosts(bootstrap: str) -> list[str]:
    """The host part of each ``[proto://]host[:port]`` in a bootstrap list."""
    hosts = []
    for server in bootstrap.split(","):
        server = server.strip().split("://", 1)[-1]
        if server.startswith("["):  # [v6 address]:port
            hosts.append(server[1:].partition("]")[0])
        elif server.count(":") > 1:  # a bare IPv6 address, no port
            hosts.append(server)
        elif server:
            hosts.append(server.partition(":")[0])
    return hosts


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1); no name is looked up."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_PASSWORD_ALPHABET = string.ascii_letters + string.digits


def generate_password(length: int = 24) -> str:
    """A random password of letters and digits (~143 bits at 24): nothing a command line
    could take for an option (a leading "-") or a DSN for syntax."""
    return "".join(_secrets.choice(_PASSWORD_ALPHABET) for _ in range(length))


def ensure_dev_secrets(settings: Settings) -> Settings:
    """Generate missing secrets into secrets.env (dev profile only); return updated Settings.

    Outside the dev profile a missing secret is a configuration error: production
    passwords are chosen by the operator, never generated or defaulted.
    """
    current = {
        "NEO4J_PASSWORD": settings.neo4j.password,
        "POSTGRES_PASSWORD": settings.postgres.password,
        "POSTGRES_SUPERUSER_PASSWORD": settings.postgres.superuser_password,
    }
    missing = [key for key, value in current.items() if value is None]
    if not missing:
        return settings
    if settings.profile != "dev":
        raise ConfigError(
            f"FRAUDGRAPH_{missing[0]} is not set and the profile is {settings.profile!r}: "
            "secrets are only generated in the dev profile; set it in the environment or in "
            f"{settings.secrets_path} (mode 0600)")
    stored = read_secrets_file(settings.secrets_path)
    for key in missing:
        stored[key] = generate_password()
    write_secrets_file(settings.secrets_path, stored)
    return replace(
        settings,
        neo4j=replace(settings.neo4j, password=settings.neo4j.password or stored["NEO4J_PASSWORD"]),
        postgres=replace(
            settings.postgres,
            password=settings.postgres.password or stored["POSTGRES_PASSWORD"],
            superuser_password=(settings.postgres.superuser_password
                                or stored["POSTGRES_SUPERUSER_PASSWORD"]),
        ),
    )
