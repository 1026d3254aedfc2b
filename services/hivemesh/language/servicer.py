"""The LanguageService servicer: converts messages, calls the domain, converts back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from hivemesh.language.engine import LanguageEngine
from hivemesh.language.generate import GenerateBackend
from hivemesh.language.understanding import Understander, Understanding
from hivemesh.language.v1 import language_service_pb2 as pb
from hivemesh.language.v1 import language_service_pb2_grpc as pb_grpc
from hivemesh.mesh.errors import InvalidArgument
from hivemesh.world import zones


def understanding_to_proto(result: Understanding) -> pb.UnderstandResponse:
    return pb.UnderstandResponse(
        text=result.text,
        intent=result.intent,
        confidence=result.confidence,
        out_of_scope=result.out_of_scope,
        slots=list(result.slots),
        alternatives=[
            pb.IntentAlternative(intent=a.intent, confidence=a.confidence) for a in result.alternatives
        ],
        parts=[understanding_to_proto(part) for part in result.parts],
        without_tool=result.without_tool,
    )


# Bytes an embedding adds to a reply beyond its values (tags and lengths, generously).
EMBEDDING_FRAMING_BYTES = 16


class LanguageServicer(pb_grpc.LanguageServiceServicer):
    def __init__(
        self,
        understander: Understander,
        engine: LanguageEngine,
        backend: GenerateBackend,
        *,
        max_reply_bytes: int = 4 * 1024 * 1024,
        default_zone: str = zones.UTC_NAME,
    ) -> None:
        self._understander = understander
        self._default_zone = default_zone
        self._engine = engine
        self._backend = backend
        self._max_reply_bytes = max_reply_bytes

    async def Understand(
        self,
        request: pb.UnderstandRequest,
        context: grpc.aio.ServicerContext[pb.UnderstandRequest, pb.UnderstandResponse],
    ) -> pb.UnderstandResponse:
        zone = zones.zone(request.time_zone or self._default_zone, "time_zone")
        result = await self._understander.understand(
            request.text, list(request.context), zone, request.available_intents
        )
        return understanding_to_proto(result)

    async def Embed(
        self, request: pb.EmbedRequest, context: grpc.aio.ServicerContext[pb.EmbedRequest, pb.EmbedResponse]
    ) -> pb.EmbedResponse:
        result = await self._engine.embed(list(request.texts))
        # 4 bytes a value, plus a few bytes of framing a vector: a reply over the message limit
        # could never be sent (the caller would see RESOURCE_EXHAUSTED and retry in vain).
        size = len(result.vectors) * (4 * result.dimensions + EMBEDDING_FRAMING_BYTES)
        if size > self._max_reply_bytes:
            most = max(1, self._max_reply_bytes // (4 * result.dimensions + EMBEDDING_FRAMING_BYTES))
            raise InvalidArgument.field(
                "texts",
                f"{len(request.texts)} texts of {result.dimensions} dimensions make a reply over the "
                f"{self._max_reply_bytes}-byte message limit; send at most {most} per call",
            )
        return pb.EmbedResponse(
            embeddings=[pb.Embedding(values=v) for v in result.vectors],
            model=result.model,
            dimensions=result.dimensions,
        )

    async def Generate(
        self,
        request: pb.GenerateRequest,
        context: grpc.aio.ServicerContext[pb.GenerateRequest, pb.GenerateResponse],
    ) -> AsyncIterator[pb.GenerateResponse]:
        async for piece in self._backend.generate(request):
            yield piece
