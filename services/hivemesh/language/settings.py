"""Language-service settings beyond the shared ``Settings``, read once from ``HIVEMESH_NLU_*`` /
``HIVEMESH_EMBED*`` variables when the service is built (the live router's directory is
``HIVEMESH_NLU_MODEL``, a shadow router's ``HIVEMESH_NLU_SHADOW_MODEL``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hivemesh.language.batching import BatchConfig
from hivemesh.language.device import device_from_env
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
    # Where the models run ("cpu" or "cuda", from HIVEMESH_LANGUAGE_DEVICE).
    device: str = "cpu"
    # In-flight calls a replica takes before callers spill elsewhere; the batch size by default.
    capacity: int = 64
    # The methods the service reports as heavy; None: those that run a local model.
    heavy_methods: tuple[str, ...] | None = None
    # Directory of a trained router (HIVEMESH_NLU_MODEL); None: the router of the shipped data.
    model: Path | None = None

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
            device=device_from_env(env),
            capacity=reader.integer("HIVEMESH_LANGUAGE_CAPACITY", max_batch, minimum=1),
            heavy_methods=_heavy_methods(reader),
            model=reader.optional_path("HIVEMESH_NLU_MODEL"),
        )


HEAVY_CANDIDATES = ("Understand", "Embed", "Generate")


def _heavy_methods(reader: EnvReader) -> tuple[str, ...] | None:
    raw = reader.optional("HIVEMESH_LANGUAGE_HEAVY_METHODS")
    if raw is None or raw.lower() == "auto":
        return None
    if raw.lower() == "none":
        return ()
    named = tuple(m.strip() for m in raw.split(",") if m.strip())
    unknown = [m for m in named if m not in HEAVY_CANDIDATES]
    if unknown:
        raise ConfigError(
            f"HIVEMESH_LANGUAGE_HEAVY_METHODS names {', '.join(unknown)}; "
            f"choose among {', '.join(HEAVY_CANDIDATES)}, or auto, or none"
        )
    return named


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
