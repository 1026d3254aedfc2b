"""Generate backends: the reply to a conversation as a stream of text, tool calls, usage and a
finish reason. ``build_backend(os.environ)`` picks the built-in backend or an OpenAI-compatible
server (see ``config.py`` for the ``HIVEMESH_LLM_*`` variables)."""

from __future__ import annotations

from hivemesh.language.generate.backend import GenerateBackend, build_backend
from hivemesh.language.generate.builtin import BuiltinBackend, compose_reply
from hivemesh.language.generate.config import LLMConfig, llm_config_from_env
from hivemesh.language.generate.openai_compat import OpenAICompatibleBackend

__all__ = [
    "BuiltinBackend",
    "GenerateBackend",
    "LLMConfig",
    "OpenAICompatibleBackend",
    "build_backend",
    "compose_reply",
    "llm_config_from_env",
]
