"""Language-service settings beyond the shared ``Settings``, read once from ``HIVEMESH_NLU_*`` /
``HIVEMESH_EMBED*`` variables when the service is built (the model path itself is
``Settings.nlu_model``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hivemesh.language.batching import BatchConfig
from hivemesh.language.nlu.factory import ENCODERS
from hivemesh.mesh.config import ConfigError


@dataclass(frozen=True)
class LanguageConfig:
    batch: BatchConfig
    # Encoder behind Embed; None means the router's sentence encoder, or the hashed lexical one.
    embed_encoder: str | None
    # Dimension of the hashed lexical embeddings.
    lexical_dimensions: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LanguageConfig:
        max_batch = _integer(env, "HIVEMESH_NLU_MAX_BATCH", 64, minimum=1)
        wait_ms = _number(env, "HIVEMESH_NLU_MAX_WAIT_MS", 2.0)
        encoder = env.get("HIVEMESH_EMBED_ENCODER", "").strip().lower() or None
        if encoder is not None and encoder not in ENCODERS:
            raise ConfigError(f"HIVEMESH_EMBED_ENCODER must be one of {', '.join(ENCODERS)}, got {encoder!r}")
        return cls(
            batch=BatchConfig(max_batch=max_batch, max_wait_s=wait_ms / 1000.0),
            embed_encoder=encoder,
            lexical_dimensions=_integer(env, "HIVEMESH_EMBED_DIMENSIONS", 512, minimum=16),
        )


def _integer(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {raw!r}")
    return value
