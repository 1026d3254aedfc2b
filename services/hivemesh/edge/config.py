"""Settings of the edge (the HTTP front doors) beyond the shared ``Settings``, read once from
``HIVEMESH_EDGE_*``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from hivemesh.mesh.config import ConfigError, EnvReader

DEFAULT_EDGE_PORT: Final = 8080
DEFAULT_MODEL: Final = "hivemesh"
_OFF: Final = ("off", "none", "disabled")


@dataclass(frozen=True)
class EdgeConfig:
    # The HTTP port; None: `hivemesh up` starts no edge. 0 picks a free port.
    port: int | None = DEFAULT_EDGE_PORT
    # Largest request body accepted; a larger one is refused (413) before it is read further.
    max_body_bytes: int = 1024 * 1024
    # The model name the OpenAI door serves: the agent behind the gateway.
    model: str = DEFAULT_MODEL
    # How long a call to the gateway that failed with a resumable code (UNAVAILABLE) is tried
    # again before the caller gets 503: long enough for a gateway restart, short for a caller.
    gateway_patience_s: float = 5.0
    # Where clients reach the edge (the A2A Agent Card names it); empty: http://<host>:<port>.
    public_url: str = ""
    # The port of A2A's gRPC binding; None: not served. 0 picks a free port.
    a2a_grpc_port: int | None = None
    # Where clients reach that binding (the Agent Card names it); empty: <host>:<port>.
    a2a_grpc_url: str = ""
    # The console's OTLP/HTTP trace receiver (POST /v1/traces on the edge's port): off by default.
    console_otlp: bool = False
    # The bearer token a sender of spans must present; empty: none asked.
    console_otlp_token: str = ""
    # The tool service's Prometheus /metrics, read for the console's tool figures when the tool
    # service runs in another process (several: replicas, added up).
    tool_metrics_urls: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EdgeConfig:
        e = os.environ if env is None else env
        reader = EnvReader(e)
        raw_port = reader.text("HIVEMESH_EDGE_PORT", str(DEFAULT_EDGE_PORT)).lower()
        port = None if raw_port in _OFF else reader.port_value("HIVEMESH_EDGE_PORT", raw_port)
        raw_grpc = reader.text("HIVEMESH_EDGE_A2A_GRPC_PORT", "off").lower()
        model = reader.text("HIVEMESH_EDGE_MODEL", DEFAULT_MODEL)
        if len(model) > 128 or any(c.isspace() for c in model):
            raise ConfigError(f"HIVEMESH_EDGE_MODEL must be a name without spaces, got {model!r}")
        return cls(
            port=port,
            max_body_bytes=reader.integer("HIVEMESH_EDGE_MAX_BODY_BYTES", cls.max_body_bytes, minimum=1024),
            model=model,
            gateway_patience_s=reader.seconds("HIVEMESH_EDGE_GATEWAY_PATIENCE", cls.gateway_patience_s),
            public_url=_public_url(reader.text("HIVEMESH_EDGE_PUBLIC_URL", "")),
            a2a_grpc_port=None
            if raw_grpc in _OFF
            else reader.port_value("HIVEMESH_EDGE_A2A_GRPC_PORT", raw_grpc),
            a2a_grpc_url=_grpc_url(reader.text("HIVEMESH_EDGE_A2A_GRPC_URL", "")),
            console_otlp=_on_off(reader.text("HIVEMESH_CONSOLE_OTLP", "off")),
            console_otlp_token=reader.text("HIVEMESH_CONSOLE_OTLP_TOKEN", ""),
            tool_metrics_urls=_urls(reader.text("HIVEMESH_CONSOLE_TOOL_METRICS_URL", "")),
        )


def _on_off(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("on", "true", "1", "yes"):
        return True
    if value in ("off", "false", "0", "no", ""):
        return False
    raise ConfigError(f"HIVEMESH_CONSOLE_OTLP must be on or off, got {raw!r}")


def _urls(raw: str) -> tuple[str, ...]:
    urls = tuple(u.strip() for u in raw.split(",") if u.strip())
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"HIVEMESH_CONSOLE_TOOL_METRICS_URL must be http(s):// URLs, comma-separated, got {url!r}"
            )
    return urls


def _public_url(raw: str) -> str:
    if raw and not raw.startswith(("http://", "https://")):
        raise ConfigError(f"HIVEMESH_EDGE_PUBLIC_URL must be an http:// or https:// URL, got {raw!r}")
    return raw.rstrip("/")


def _grpc_url(raw: str) -> str:
    host, _, port = raw.rpartition(":")
    if raw and (not host or "/" in raw or not port.isdigit()):
        raise ConfigError(f"HIVEMESH_EDGE_A2A_GRPC_URL must be host:port, got {raw!r}")
    return raw
