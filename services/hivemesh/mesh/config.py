"""Typed, frozen configuration read once from ``HIVEMESH_*`` environment variables.

Every setting is documented in the README's configuration table. ``Settings`` holds what several
services share; each service's own knobs are in its own frozen config (``PlannerConfig``,
``ToolConfig``, ``GatewayConfig``, ``TaskConfig``, ...), read with the same ``EnvReader`` once when the
service is built. A bad value fails at start-up naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Final

SERVICES: Final = ("gateway", "planner", "language", "memory", "tool")
# The PEM files of transport security: a service needs all three.
TLS_FILES: Final = ("HIVEMESH_TLS_CERT", "HIVEMESH_TLS_KEY", "HIVEMESH_TLS_CA")
DEFAULT_PORTS: Final = {"gateway": 50051, "planner": 50052, "language": 50053, "memory": 50054, "tool": 50055}
DEFAULT_METRICS_PORT: Final = 9464


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class KeepaliveConfig:
    """HTTP/2 keepalive, identical on clients and servers so neither side sees the other as abusive."""

    # Ping an idle connection this often so dead peers (and NAT/conntrack drops) are noticed.
    time_s: float = 30.0
    # Close the connection if a ping is not acknowledged within this time.
    timeout_s: float = 10.0
    # Servers accept client pings at most this often; must be <= time_s or clients get GOAWAY.
    min_ping_interval_s: float = 10.0
    # Recycle connections so clients rebalance across new replicas (Kubernetes scale-up).
    max_connection_age_s: float = 300.0
    # Let calls in flight on a recycled connection finish.
    max_connection_age_grace_s: float = 30.0


def package_version() -> str:
    """The installed hivemesh distribution's version; a source tree without metadata says so."""
    try:
        return metadata.version("hivemesh")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@dataclass(frozen=True)
class ReleaseConfig:
    """Which build this process is, as it reports it (hivemesh.mesh.release)."""

    # HIVEMESH_RELEASE: the image's version; the package version when unset.
    version: str = field(default_factory=package_version)
    # HIVEMESH_REVISION: the deployment revision (the pod template hash under Argo Rollouts), so a
    # canary and its stable side differ even when only a model or a setting changed.
    revision: str = ""

    @property
    def label(self) -> str:
        """The ``release`` label of this process's metrics: what canary analyses compare."""
        return self.revision or self.version


@dataclass(frozen=True)
class ServerConfig:
    """How each gRPC server binds, limits and shuts down."""

    host: str = "127.0.0.1"
    max_message_bytes: int = 4 * 1024 * 1024
    max_concurrent_rpcs: int = 256
    # In-flight calls get this long to finish after SIGTERM before they are cancelled.
    grace_period_s: float = 10.0
    # After SIGTERM, readiness reports NOT_SERVING this long before the listener closes, so load
    # balancers stop routing here first. 0 locally; a few seconds behind Kubernetes endpoints.
    shutdown_delay_s: float = 0.0
    # Several processes on one host may listen on the same port (SO_REUSEPORT), as replicas behind
    # one address: the kernel spreads new connections over them, and one that stops leaves the
    # others serving. Off, a second process on a taken port fails to start.
    reuse_port: bool = False
    keepalive: KeepaliveConfig = field(default_factory=KeepaliveConfig)
    release: ReleaseConfig = field(default_factory=ReleaseConfig)


# The task system's key prefix when HIVEMESH_REDIS_PREFIX is unset. The braces are a hash tag: on
# Redis Cluster all the queue's keys land in one slot, so its scripts stay atomic.
DEFAULT_REDIS_PREFIX: Final = "hivemesh:{tasks}"


@dataclass(frozen=True)
class RedisKeys:
    """Where one deployment's keys live in a Redis database it may share with others, all derived
    from ``HIVEMESH_REDIS_PREFIX``. The task system (queue, wake-ups, rate limits) uses the prefix
    as it is, hash tag included. Memory and tool keys go under its ``namespace``, the prefix without
    braces: they need no common slot, so they spread over the cluster instead of crowding the
    queue's. The default prefix keeps the names of earlier versions (``hivemesh:memory:``,
    ``hivemesh:tool:idempotency:``), so existing data stays readable."""

    prefix: str = DEFAULT_REDIS_PREFIX

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RedisKeys:
        return cls(EnvReader(env).text("HIVEMESH_REDIS_PREFIX", DEFAULT_REDIS_PREFIX))

    @property
    def namespace(self) -> str:
        if self.prefix == DEFAULT_REDIS_PREFIX:
            return "hivemesh"
        return self.prefix.replace("{", "").replace("}", "")

    @property
    def memory(self) -> str:
        """Prefix of the memory service's short-term turns."""
        return f"{self.namespace}:memory:"

    @property
    def tool_idempotency(self) -> str:
        """Prefix of the tool service's idempotency records and incarnations."""
        return f"{self.namespace}:tool:idempotency:"


@dataclass(frozen=True)
class TlsConfig:
    """Transport security without a service mesh (``HIVEMESH_TLS_*``): paths of PEM files, read when
    servers and channels are built. A service needs its certificate and key; a client that only
    verifies the gateway (the CLI) may have the CA alone."""

    # The CA bundle that signs every peer's certificate (old and new CA while rotating).
    ca: Path
    # This process's certificate chain and its private key.
    cert: Path | None = None
    key: Path | None = None
    # The name expected in servers' certificates when the host dialled is not among them.
    server_name: str | None = None


@dataclass(frozen=True)
class TracingConfig:
    """Where this process's spans go: a JSON-lines file and/or an OTLP collector."""

    # HIVEMESH_TRACE_FILE: spans appended as JSON lines; None: no file.
    file: Path | None = None
    # The OTLP protocol when the standard OTEL_* variables ask for export ("grpc" or
    # "http/protobuf", or another value, which is refused with a warning); None: no export. The
    # exporter itself reads the endpoint, headers, certificate, compression and timeout variables.
    otlp_protocol: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TracingConfig:
        return cls(_optional_path(EnvReader(env).optional("HIVEMESH_TRACE_FILE")), otlp_protocol(env))


def otlp_protocol(env: Mapping[str, str]) -> str | None:
    """The OTLP protocol the standard variables ask for, or None when they ask for no export.

    ``OTEL_TRACES_EXPORTER=otlp`` or an ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`` turns it on (and
    ``OTEL_TRACES_EXPORTER=none`` or ``OTEL_SDK_DISABLED=true`` off); ``OTEL_EXPORTER_OTLP_[TRACES_]
    PROTOCOL`` picks the protocol, ``grpc`` by default."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    chosen = {e.strip().lower() for e in env.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()}
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if "otlp" not in chosen and not (endpoint and not chosen - {"otlp"} and "none" not in chosen):
        return None
    return (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    ).strip()


@dataclass(frozen=True)
class Settings:
    """All hivemesh settings. Build with ``Settings.from_env()``; tests use ``dataclasses.replace``."""

    data_dir: Path
    server: ServerConfig
    ports: Mapping[str, int]
    # Where each service is reached from the others (host:port).
    addresses: Mapping[str, str]
    # Prometheus metrics port; None disables the exporter, 0 picks a free port.
    metrics_port: int | None
    # Deadline given to an outbound call made with no inbound deadline to inherit.
    default_call_timeout_s: float
    # Kept back from an inherited deadline so a reply can still travel back in time.
    deadline_margin_s: float
    task_deadline_s: float
    max_steps: int
    # Inside a service mesh the sidecar retries; the in-process retry policy is then turned off.
    in_mesh: bool
    # Services served by this process call each other in-process (same contracts and interceptors,
    # no HTTP/2); off, every call goes through gRPC on loopback.
    local_calls: bool
    redis_url: str | None
    database_url: str | None
    qdrant_url: str | None
    log_level: str
    log_json: bool
    # None: plaintext gRPC (inside Istio the sidecars encrypt).
    tls: TlsConfig | None
    # The internal credential (hivemesh.mesh.credentials): checked by planner, language, memory and
    # tool when on; the key files default to the data directory's (made on first use).
    mesh_auth: bool = True
    mesh_signing_key: Path | None = None
    mesh_jwks: Path | None = None
    mesh_credential_ttl_s: float = 3600.0
    tracing: TracingConfig = field(default_factory=TracingConfig)

    @property
    def trace_file(self) -> Path | None:
        return self.tracing.file

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        reader = EnvReader(e)
        ports = {s: reader.port(f"HIVEMESH_{s.upper()}_PORT", DEFAULT_PORTS[s]) for s in SERVICES}
        host = reader.text("HIVEMESH_HOST", "127.0.0.1")
        connect_host = "127.0.0.1" if host in ("0.0.0.0", "::", "[::]") else host  # noqa: S104 - comparison only
        addresses = {
            s: reader.text(f"HIVEMESH_{s.upper()}_ADDR", f"{connect_host}:{ports[s]}") for s in SERVICES
        }
        metrics = reader.text("HIVEMESH_METRICS_PORT", str(DEFAULT_METRICS_PORT)).strip().lower()
        metrics_port = (
            None
            if metrics in ("", "off", "none", "disabled")
            else reader.port_value("HIVEMESH_METRICS_PORT", metrics)
        )
        data_dir = Path(reader.text("HIVEMESH_DATA_DIR", str(_default_data_dir(e)))).expanduser()
        return cls(
            data_dir=data_dir,
            server=ServerConfig(
                host=host,
                max_message_bytes=reader.integer("HIVEMESH_MAX_MESSAGE_BYTES", 4 * 1024 * 1024, minimum=1024),
                max_concurrent_rpcs=reader.integer("HIVEMESH_MAX_CONCURRENT_RPCS", 256, minimum=1),
                grace_period_s=reader.seconds("HIVEMESH_GRACE_PERIOD", 10.0),
                shutdown_delay_s=reader.seconds("HIVEMESH_SHUTDOWN_DELAY", 0.0),
                reuse_port=reader.boolean("HIVEMESH_REUSE_PORT", default=False),
                keepalive=KeepaliveConfig(
                    time_s=reader.seconds("HIVEMESH_KEEPALIVE_TIME", 30.0, minimum=1.0),
                    timeout_s=reader.seconds("HIVEMESH_KEEPALIVE_TIMEOUT", 10.0, minimum=1.0),
                    max_connection_age_s=reader.seconds("HIVEMESH_MAX_CONNECTION_AGE", 300.0, minimum=1.0),
                ),
                release=ReleaseConfig(
                    version=reader.text("HIVEMESH_RELEASE", package_version()),
                    revision=reader.text("HIVEMESH_REVISION", ""),
                ),
            ),
            ports=ports,
            addresses=addresses,
            metrics_port=metrics_port,
            default_call_timeout_s=reader.seconds("HIVEMESH_CALL_TIMEOUT", 30.0, minimum=0.001),
            deadline_margin_s=reader.seconds("HIVEMESH_DEADLINE_MARGIN", 0.005),
            task_deadline_s=reader.seconds("HIVEMESH_TASK_DEADLINE", 60.0, minimum=0.001),
            max_steps=reader.integer("HIVEMESH_MAX_STEPS", 8, minimum=1),
            in_mesh=reader.boolean("HIVEMESH_IN_MESH", default=False),
            local_calls=reader.boolean("HIVEMESH_LOCAL_CALLS", default=True),
            redis_url=reader.optional("HIVEMESH_REDIS_URL"),
            database_url=reader.optional("HIVEMESH_DATABASE_URL"),
            qdrant_url=reader.optional("HIVEMESH_QDRANT_URL"),
            log_level=reader.choice("HIVEMESH_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
            log_json=reader.boolean("HIVEMESH_LOG_JSON", default=False),
            tls=_tls(reader),
            mesh_auth=reader.boolean("HIVEMESH_MESH_AUTH", default=True),
            mesh_signing_key=_optional_path(reader.optional("HIVEMESH_MESH_SIGNING_KEY")),
            mesh_jwks=_optional_path(reader.optional("HIVEMESH_MESH_JWKS")),
            mesh_credential_ttl_s=reader.seconds("HIVEMESH_MESH_CREDENTIAL_TTL", 3600.0, minimum=10.0),
            tracing=TracingConfig.from_env(e),
        )

    def with_ports(self, **ports: int) -> Settings:
        """Copy with some listening ports changed (and the matching addresses), e.g. port 0 in tests."""
        merged = {**self.ports, **ports}
        host = "127.0.0.1" if self.server.host in ("0.0.0.0", "::", "[::]") else self.server.host  # noqa: S104
        addresses = {**self.addresses, **{s: f"{host}:{p}" for s, p in ports.items()}}
        return replace(self, ports=merged, addresses=addresses)


def _default_data_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME", "~")) / ".local" / "share")
    return Path(base) / "hivemesh"


def _optional_path(value: str | None) -> Path | None:
    return None if value is None else Path(value).expanduser()


def _tls(reader: EnvReader) -> TlsConfig | None:
    paths = {name: reader.optional(name) for name in TLS_FILES}
    server_name = reader.optional("HIVEMESH_TLS_SERVER_NAME")
    given = [name for name, value in paths.items() if value is not None]
    missing = [name for name, value in paths.items() if value is None]
    if not given:
        if server_name is not None:
            raise ConfigError("HIVEMESH_TLS_SERVER_NAME is set but TLS is off: set HIVEMESH_TLS_CA too")
        return None
    # The CA alone is a client's configuration (verify the server, show no certificate); the
    # services refuse it when they build their listeners.
    if missing and given != ["HIVEMESH_TLS_CA"]:
        raise ConfigError(
            f"TLS needs {', '.join(TLS_FILES)} together: {', '.join(given)} "
            f"{'is' if len(given) == 1 else 'are'} set but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not"
        )
    return TlsConfig(
        ca=Path(str(paths["HIVEMESH_TLS_CA"])).expanduser(),
        cert=_optional_path(paths["HIVEMESH_TLS_CERT"]),
        key=_optional_path(paths["HIVEMESH_TLS_KEY"]),
        server_name=server_name,
    )


class EnvReader:
    """Parses environment values, naming the variable in every error (shared by every service's
    own settings)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def optional(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def text(self, name: str, default: str) -> str:
        return self.optional(name) or default

    def optional_path(self, name: str) -> Path | None:
        """A path (``~`` expanded), or None when unset."""
        return _optional_path(self.optional(name))

    def integer(self, name: str, default: int, *, minimum: int = 0) -> int:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
        if value < minimum:
            raise ConfigError(f"{name} must be at least {minimum}, got {value}")
        return value

    def optional_integer(self, name: str) -> int | None:
        """An integer of any sign, or None when unset."""
        raw = self.optional(name)
        if raw is None:
            return None
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None

    def port(self, name: str, default: int) -> int:
        raw = self.optional(name)
        return default if raw is None else self.port_value(name, raw)

    def port_value(self, name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a port number 0-65535, got {raw!r}") from None
        if not 0 <= value <= 65535:
            raise ConfigError(f"{name} must be a port number 0-65535, got {value}")
        return value

    def seconds(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        """A duration in seconds; accepts a plain number or a suffix ms/s/m/h/d ("250ms", "2m", "7d")."""
        raw = self.optional(name)
        if raw is None:
            return default
        units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
        number, scale = raw, 1.0
        for suffix in ("ms", "s", "m", "h", "d"):
            if raw.endswith(suffix):
                number, scale = raw[: -len(suffix)], units[suffix]
                break
        try:
            value = float(number) * scale
        except ValueError:
            raise ConfigError(f"{name} must be a duration such as 30, 250ms or 2m, got {raw!r}") from None
        if value < minimum:
            raise ConfigError(f"{name} must be at least {minimum}s, got {raw!r}")
        return value

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
        if value < minimum:
            raise ConfigError(f"{name} must be at least {minimum}, got {raw!r}")
        return value

    def boolean(self, name: str, *, default: bool) -> bool:
        raw = self.optional(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, got {raw!r}")

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        raw = (self.optional(name) or default).upper()
        if raw not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
        return raw
