"""Embeddings from the language service's Embed RPC, in batches the contract accepts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import grpc

from hivemesh.language.v1.language_service_pb2 import EmbedRequest, EmbedResponse
from hivemesh.language.v1.language_service_pb2_grpc import LanguageServiceStub
from hivemesh.memory.errors import embedder_unavailable
from hivemesh.mesh.errors import DeadlineExceeded, HivemeshError
from hivemesh.mesh.language_pools import LanguagePools
from hivemesh.mesh.status import domain_errors

if TYPE_CHECKING:  # the async stub exists in the type stubs only
    from hivemesh.language.v1.language_service_pb2_grpc import LanguageServiceAsyncStub

# Texts per EmbedRequest: well within its 2048 and within one reply of the message limit at any
# configured dimension up to 2048.
MAX_BATCH = 512


class LanguageEmbedder:
    def __init__(self, channel: Callable[[], grpc.aio.Channel], pools: LanguagePools | None = None) -> None:
        # The channel is opened on first use: the language service may start after memory. With
        # pools, calls go over the GPU and CPU pools instead (hivemesh.mesh.language_pools).
        self._channel = channel
        self._pools = pools
        self._stub: LanguageServiceAsyncStub | None = None

    @property
    def stub(self) -> LanguageServiceAsyncStub:
        if self._stub is None:
            self._stub = LanguageServiceStub(self._channel())
        return self._stub

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), MAX_BATCH):
            batch = list(texts[start : start + MAX_BATCH])
            try:
                request = EmbedRequest(texts=batch)
                with domain_errors():
                    if self._pools is None:
                        response = await self.stub.Embed(request)
                    else:
                        response = await self._pools.unary("Embed", _embed(request))
            except DeadlineExceeded as exc:
                raise DeadlineExceeded("the language service did not embed in time") from exc
            except HivemeshError as exc:
                raise embedder_unavailable(f"language service: {exc.code.name}") from exc
            if len(response.embeddings) != len(batch):
                raise embedder_unavailable("language service returned a wrong number of embeddings")
            vectors.extend(list(e.values) for e in response.embeddings)
        return vectors


def _embed(request: EmbedRequest) -> Callable[[LanguageServiceAsyncStub], Awaitable[EmbedResponse]]:
    async def call(stub: LanguageServiceAsyncStub) -> EmbedResponse:
        response: EmbedResponse = await stub.Embed(request)
        return response

    return call
