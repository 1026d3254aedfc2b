"""An encoder backed by any server that speaks the OpenAI ``POST /v1/embeddings`` wire format
(OpenAI, vLLM, Ollama, llama.cpp server, text-embeddings-inference).

Failures are domain errors: an unreachable or failing server is UNAVAILABLE (the request may
succeed later), a reply that does not match the wire format is UNAVAILABLE too, since the caller
did nothing wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx
import numpy as np
from opentelemetry import trace

from hivemesh.language.nlu.encoders import l2_normalise
from hivemesh.language.nlu.sparse import FloatArray
from hivemesh.mesh import genai, telemetry
from hivemesh.mesh.config import ConfigError
from hivemesh.mesh.errors import HivemeshError, Unavailable

URL_VARIABLE = "HIVEMESH_EMBEDDINGS_URL"
KEY_VARIABLE = "HIVEMESH_EMBEDDINGS_API_KEY"
MODEL_VARIABLE = "HIVEMESH_EMBEDDINGS_MODEL"
TIMEOUT_VARIABLE = "HIVEMESH_EMBEDDINGS_TIMEOUT"


@dataclass(frozen=True)
class EmbeddingsEndpoint:
    """Where the embeddings server is: base URL ending in ``/v1``, key and model name."""

    base_url: str
    model: str
    api_key: str | None = None
    timeout_s: float = 30.0
    # Inputs per HTTP request; servers cap this (OpenAI at 2048).
    max_inputs: int = 256

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EmbeddingsEndpoint:
        base_url = env.get(URL_VARIABLE, "").strip()
        if not base_url:
            raise ConfigError(f"{URL_VARIABLE} must be set for the openai encoder (e.g. http://host:8000/v1)")
        raw_timeout = env.get(TIMEOUT_VARIABLE, "").strip() or "30"
        try:
            timeout = float(raw_timeout)
        except ValueError:
            message = f"{TIMEOUT_VARIABLE} must be a number of seconds, got {raw_timeout!r}"
            raise ConfigError(message) from None
        return cls(
            base_url=base_url.rstrip("/"),
            model=env.get(MODEL_VARIABLE, "").strip() or "text-embedding-3-small",
            api_key=env.get(KEY_VARIABLE, "").strip() or None,
            timeout_s=timeout,
        )


class OpenAIEmbeddingsEncoder:
    """Calls the endpoint synchronously (callers run it in a worker thread) and normalises the rows."""

    def __init__(self, endpoint: EmbeddingsEndpoint, transport: httpx.BaseTransport | None = None) -> None:
        self._endpoint = endpoint
        headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
        self._client = httpx.Client(
            base_url=endpoint.base_url, headers=headers, timeout=endpoint.timeout_s, transport=transport
        )
        self._dimensions: int | None = None

    @property
    def name(self) -> str:
        return self._endpoint.model

    @property
    def dimensions(self) -> int:
        if self._dimensions is None:
            self.encode(["dimensions probe"])
        assert self._dimensions is not None  # set by encode
        return self._dimensions

    def close(self) -> None:
        self._client.close()

    def encode(self, texts: Sequence[str]) -> FloatArray:
        rows: list[FloatArray] = []
        step = self._endpoint.max_inputs
        for start in range(0, len(texts), step):
            rows.append(self._request(list(texts[start : start + step])))
        if not rows:
            return np.zeros((0, self._dimensions or 0), dtype=np.float32)
        vectors = np.concatenate(rows)
        self._dimensions = int(vectors.shape[1])
        return l2_normalise(vectors)

    def _request(self, texts: list[str]) -> FloatArray:
        """One call, an ``embeddings`` client span (GenAI conventions) when spans are recorded."""
        url = self._client.base_url
        span = telemetry.start_span(
            f"{genai.EMBEDDINGS} {self._endpoint.model}",
            trace.SpanKind.CLIENT,
            {
                genai.OPERATION_NAME: genai.EMBEDDINGS,
                genai.PROVIDER_NAME: genai.OPENAI,
                genai.REQUEST_MODEL: self._endpoint.model,
                genai.SERVER_ADDRESS: url.host,
                genai.SERVER_PORT: url.port or (443 if url.scheme == "https" else 80),
            },
        )
        try:
            vectors, input_tokens = self._post(texts)
            if input_tokens is not None:
                span.set_attribute(genai.INPUT_TOKENS, input_tokens)
        except HivemeshError as exc:
            genai.failed(span, exc)
            raise
        finally:
            span.end()
        return vectors

    def _post(self, texts: list[str]) -> tuple[FloatArray, int | None]:
        """The vectors of ``texts`` and the input tokens the server reports (None when it does not)."""
        try:
            response = self._client.post("/embeddings", json={"model": self._endpoint.model, "input": texts})
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"embeddings server unreachable: {exc}", reason="EMBEDDINGS_UNAVAILABLE"
            ) from exc
        if response.status_code != httpx.codes.OK:
            raise Unavailable(
                f"embeddings server answered HTTP {response.status_code}",
                reason="EMBEDDINGS_UNAVAILABLE",
                metadata={"http_status": str(response.status_code)},
            )
        try:
            reply = response.json()
            items = sorted(reply["data"], key=lambda item: int(item["index"]))
            vectors = np.asarray([item["embedding"] for item in items], dtype=np.float32)
            usage = reply.get("usage") or {}
            input_tokens = int(usage["prompt_tokens"]) if "prompt_tokens" in usage else None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            message = "embeddings server sent a malformed reply"
            raise Unavailable(message, reason="EMBEDDINGS_MALFORMED") from exc
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise Unavailable(
                f"embeddings server returned {len(vectors)} vectors for {len(texts)} texts",
                reason="EMBEDDINGS_MALFORMED",
            )
        return vectors, input_tokens
