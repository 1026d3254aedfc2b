"""Settings of the OpenAI-compatible backend, read from ``HIVEMESH_LLM_*`` variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hivemesh.mesh.config import ConfigError


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
    )
