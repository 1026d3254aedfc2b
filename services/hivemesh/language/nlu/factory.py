"""Which sentence encoder a name means: ``lexical`` (none, n-grams only), ``minilm`` or ``openai``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from hivemesh.language.device import device_from_env
from hivemesh.language.nlu.encoders import TextEncoder
from hivemesh.language.nlu.minilm import MiniLmEncoder
from hivemesh.language.nlu.openai_embeddings import EmbeddingsEndpoint, OpenAIEmbeddingsEncoder
from hivemesh.mesh.config import ConfigError

ENCODERS = ("lexical", "minilm", "openai")


def sentence_encoder(kind: str, env: Mapping[str, str], weights: Path | None = None) -> TextEncoder | None:
    """``weights``: a directory of fine-tuned weights for the encoder (minilm only)."""
    if kind == "lexical":
        return None
    if kind == "minilm":
        return MiniLmEncoder(device=device_from_env(env), weights=weights)
    if weights is not None:
        raise ConfigError(f"encoder {kind!r} has no weights of its own to load")
    if kind == "openai":
        return OpenAIEmbeddingsEncoder(EmbeddingsEndpoint.from_env(env))
    raise ConfigError(f"unknown encoder {kind!r}; choose one of {', '.join(ENCODERS)}")


def encoder_loader(env: Mapping[str, str]) -> _Loader:
    return _Loader(env)


class _Loader:
    """Rebuilds the encoder a saved router names, refusing a different embeddings model."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def __call__(self, kind: str, model_name: str, weights: Path | None) -> TextEncoder:
        encoder = sentence_encoder(kind, self._env, weights)
        if encoder is None:
            raise ConfigError(f"the router needs encoder {kind!r}")
        if encoder.name != model_name:
            raise ConfigError(
                f"the router was trained on embeddings of {model_name!r} but the encoder is {encoder.name!r}"
            )
        return encoder
