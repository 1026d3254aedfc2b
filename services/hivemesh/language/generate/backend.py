"""The ``GenerateBackend`` port and the choice of backend from the environment.

``HIVEMESH_LLM_BACKEND`` picks ``builtin`` (deterministic, no model) or ``openai`` (any server that
speaks the OpenAI chat completions API: vLLM, Ollama, llama.cpp server, a hosted API). When it is
unset, setting ``HIVEMESH_LLM_BASE_URL`` selects ``openai`` and leaving it unset ``builtin``.
``HIVEMESH_LLM_BACKENDS`` puts several such servers behind Generate (``pool.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Protocol

from hivemesh.language.generate.builtin import BuiltinBackend
from hivemesh.language.generate.config import llm_config_from_env, pool_config_from_env
from hivemesh.language.generate.openai_compat import OpenAICompatibleBackend
from hivemesh.language.generate.pool import BackendPool, LLMMetrics
from hivemesh.language.v1 import language_service_pb2 as pb
from hivemesh.mesh.metrics import Metrics


class GenerateBackend(Protocol):
    """Continues a conversation as a stream of text deltas, tool calls, usage and a finish reason."""

    def generate(self, request: pb.GenerateRequest) -> AsyncIterator[pb.GenerateResponse]: ...

    async def aclose(self) -> None:
        """Release connections; the backend is not used afterwards."""
        ...


def build_backend(env: Mapping[str, str], metrics: Metrics | None = None) -> GenerateBackend:
    """The backend the environment asks for; raises ConfigError naming a bad variable. An
    OpenAI-compatible server's calls are timed and their tokens counted in ``metrics``; with
    ``HIVEMESH_LLM_BACKENDS``, a pool of model servers whose choices are counted there too."""
    pool = pool_config_from_env(env)
    if pool is not None:
        return BackendPool(
            pool, LLMMetrics(None if metrics is None else metrics.registry), call_metrics=metrics
        )
    config = llm_config_from_env(env)
    if config is None:
        return BuiltinBackend()
    return OpenAICompatibleBackend(config, metrics=metrics)
