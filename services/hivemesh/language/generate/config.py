"""Settings of the OpenAI-compatible backends, read from ``HIVEMESH_LLM_*`` variables: one server
(``HIVEMESH_LLM_BASE_URL``) or several (``HIVEMESH_LLM_BACKENDS``)."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from hivemesh.mesh.config import ConfigError, EnvReader

# The header that carries GenerateRequest.session_id to self-hosted model servers (routers in
# front of vLLM replicas use it to keep a session on the replica that holds its KV cache).
DEFAULT_SESSION_HEADER = "x-session-id"


@dataclass(frozen=True)
class LLMConfig:
    """Where and how to reach an OpenAI-compatible chat completions server."""

    base_url: str
    api_key: str | None = None
    # Used when the request names no model (GenerateOptions.model).
    model: str | None = None
    connect_timeout_s: float = 5.0
    # Longest wait for the next streamed chunk, not for the whole reply: long answers stream.
    read_timeout_s: float = 60.0
    # Header sent with the request's session id; None sends none (a hosted API needs no hint).
    session_header: str | None = DEFAULT_SESSION_HEADER


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value


def llm_config_from_env(env: Mapping[str, str]) -> LLMConfig | None:
    """The OpenAI-compatible settings, or None when the built-in backend is chosen."""
    choice = env.get("HIVEMESH_LLM_BACKEND", "").strip().lower()
    base_url = env.get("HIVEMESH_LLM_BASE_URL", "").strip()
    if choice not in ("", "builtin", "openai"):
        raise ConfigError(f"HIVEMESH_LLM_BACKEND must be builtin or openai, got {choice!r}")
    if choice == "builtin" or (not choice and not base_url):
        return None
    if not base_url:
        raise ConfigError(
            "HIVEMESH_LLM_BACKEND=openai needs HIVEMESH_LLM_BASE_URL (e.g. http://127.0.0.1:8000/v1)"
        )
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"HIVEMESH_LLM_BASE_URL must be an http(s) URL, got {base_url!r}")
    return LLMConfig(
        base_url=base_url.rstrip("/"),
        api_key=env.get("HIVEMESH_LLM_API_KEY", "").strip() or None,
        model=env.get("HIVEMESH_LLM_MODEL", "").strip() or None,
        connect_timeout_s=_seconds(env, "HIVEMESH_LLM_CONNECT_TIMEOUT", 5.0),
        read_timeout_s=_seconds(env, "HIVEMESH_LLM_TIMEOUT", 60.0),
        session_header=_session_header(env),
    )


def _session_header(env: Mapping[str, str]) -> str | None:
    raw = env.get("HIVEMESH_LLM_SESSION_HEADER", "").strip().lower()
    if raw in ("off", "none"):
        return None
    if not raw:
        return DEFAULT_SESSION_HEADER
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", raw):
        raise ConfigError(f"HIVEMESH_LLM_SESSION_HEADER must be an HTTP header name or off, got {raw!r}")
    return raw


class Role(enum.Enum):
    """What a model server is for; Generate tries the roles in this order."""

    # The GPU pool: where every call goes while it is healthy and has room.
    PRIMARY = "primary"
    # A server of last resort on premises (a CPU llama.cpp server, a smaller model).
    FALLBACK = "fallback"
    # A hosted API, paid per token: only when nothing of ours answers.
    HOSTED = "hosted"


@dataclass(frozen=True)
class BackendSpec:
    """One model server of ``HIVEMESH_LLM_BACKENDS``."""

    name: str
    role: Role
    weight: float
    llm: LLMConfig


@dataclass(frozen=True)
class PoolConfig:
    """Several model servers behind Generate and how failing ones are taken out."""

    backends: tuple[BackendSpec, ...]
    # Failures in a row (connection errors, 5xx, interrupted streams) that eject a server.
    eject_after: int = 3
    # The first ejection's length; each further one in a row doubles it, up to ten times.
    eject_for_s: float = 10.0


_ENTRY = re.compile(r"^(?P<role>[a-z]+)(?::(?P<weight>[0-9.]+))?@(?P<url>https?://\S+)$")


def pool_config_from_env(env: Mapping[str, str]) -> PoolConfig | None:
    """``HIVEMESH_LLM_BACKENDS``: comma-separated ``role[:weight]@url`` entries, e.g.
    ``primary@http://vllm-0:8000/v1, primary:2@http://vllm-1:8000/v1, hosted@https://api.openai.com/v1``.
    The API key and model of a role come from ``HIVEMESH_LLM_<ROLE>_API_KEY`` / ``_MODEL``, else
    from ``HIVEMESH_LLM_API_KEY`` / ``HIVEMESH_LLM_MODEL``. None when the variable is unset."""
    raw = env.get("HIVEMESH_LLM_BACKENDS", "").strip()
    if not raw:
        return None
    if env.get("HIVEMESH_LLM_BASE_URL", "").strip():
        raise ConfigError("set HIVEMESH_LLM_BACKENDS or HIVEMESH_LLM_BASE_URL, not both")
    if env.get("HIVEMESH_LLM_BACKEND", "").strip().lower() == "builtin":
        raise ConfigError("HIVEMESH_LLM_BACKEND=builtin contradicts HIVEMESH_LLM_BACKENDS")
    reader = EnvReader(env)
    base = LLMConfig(
        base_url="",
        api_key=reader.optional("HIVEMESH_LLM_API_KEY"),
        model=reader.optional("HIVEMESH_LLM_MODEL"),
        connect_timeout_s=_seconds(env, "HIVEMESH_LLM_CONNECT_TIMEOUT", 5.0),
        read_timeout_s=_seconds(env, "HIVEMESH_LLM_TIMEOUT", 60.0),
        session_header=_session_header(env),
    )
    specs: list[BackendSpec] = []
    for position, entry in enumerate(part.strip() for part in raw.split(",")):
        match = _ENTRY.match(entry)
        if match is None:
            raise ConfigError(
                f"HIVEMESH_LLM_BACKENDS entry {position + 1} must be role[:weight]@http(s)://host/v1, "
                f"got {entry!r}"
            )
        try:
            role = Role(match["role"])
        except ValueError:
            roles = ", ".join(r.value for r in Role)
            raise ConfigError(
                f"HIVEMESH_LLM_BACKENDS entry {position + 1} has role {match['role']!r}; roles are {roles}"
            ) from None
        weight = float(match["weight"] or 1)
        if weight <= 0:
            raise ConfigError(
                f"HIVEMESH_LLM_BACKENDS entry {position + 1} needs a positive weight, got {weight:g}"
            )
        url = match["url"].rstrip("/")
        prefix = f"HIVEMESH_LLM_{role.name}_"
        llm = replace(
            base,
            base_url=url,
            api_key=reader.optional(prefix + "API_KEY") or base.api_key,
            model=reader.optional(prefix + "MODEL") or base.model,
            # A hosted API gets no session id: it is ours, and it routes by its own means.
            session_header=None if role is Role.HOSTED else base.session_header,
        )
        name = f"{role.value}:{urlsplit(url).netloc}"
        if any(s.name == name for s in specs):
            raise ConfigError(f"HIVEMESH_LLM_BACKENDS names {url} twice as {role.value}")
        specs.append(BackendSpec(name=name, role=role, weight=weight, llm=llm))
    return PoolConfig(
        backends=tuple(specs),
        eject_after=reader.integer("HIVEMESH_LLM_EJECT_AFTER", 3, minimum=1),
        eject_for_s=reader.seconds("HIVEMESH_LLM_EJECT_FOR", 10.0, minimum=0.1),
    )
