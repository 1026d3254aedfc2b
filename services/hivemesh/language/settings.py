"""Language-service settings beyond the shared ``Settings``, read once from ``HIVEMESH_NLU_*`` /
``HIVEMESH_EMBED*`` variables when the service is built (the live model's path itself is
``Settings.nlu_model``; a shadow router's is ``HIVEMESH_NLU_SHADOW_MODEL``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hivemesh.language.batching import BatchConfig
from hivemesh.language.nlu.factory import ENCODERS
from hivemesh.language.shadow import ShadowConfig
from hivemesh.mesh.config import ConfigError, EnvReader


@dataclass(frozen=True)
class LanguageConfig:
    batch: BatchConfig
    # Encoder behind Embed; None means the router's sentence encoder, or the hashed lexical one.
    embed_encoder: str | None
    # Dimension of the hashed lexical embeddings.
    lexical_dimensions: int
    # A candidate router answering Understand requests beside the live one; None: no shadow.
    shadow: ShadowConfig | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LanguageConfig:
        reader = EnvReader(env)
        max_batch = reader.integer("HIVEMESH_NLU_MAX_BATCH", 64, minimum=1)
        wait_ms = reader.number("HIVEMESH_NLU_MAX_WAIT_MS", 2.0)
        encoder = env.get("HIVEMESH_EMBED_ENCODER", "").strip().lower() or None
        if encoder is not None and encoder not in ENCODERS:
            raise ConfigError(f"HIVEMESH_EMBED_ENCODER must be one of {', '.join(ENCODERS)}, got {encoder!r}")
        return cls(
            batch=BatchConfig(max_batch=max_batch, max_wait_s=wait_ms / 1000.0),
            embed_encoder=encoder,
            lexical_dimensions=reader.integer("HIVEMESH_EMBED_DIMENSIONS", 512, minimum=16),
            shadow=_shadow(reader),
        )


def _shadow(reader: EnvReader) -> ShadowConfig | None:
    model = reader.optional("HIVEMESH_NLU_SHADOW_MODEL")
    if model is None:
        return None
    path = Path(model).expanduser()
    if not (path / "router.json").is_file():
        raise ConfigError(f"HIVEMESH_NLU_SHADOW_MODEL={model} holds no trained router (router.json)")
    return ShadowConfig(
        model=path,
        queue=reader.integer("HIVEMESH_NLU_SHADOW_QUEUE", ShadowConfig.queue, minimum=1),
        log_per_minute=reader.integer("HIVEMESH_NLU_SHADOW_LOG_RATE", ShadowConfig.log_per_minute),
    )
