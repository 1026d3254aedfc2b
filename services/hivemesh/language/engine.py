"""The language engine: the router and the embedding encoder behind their micro-batchers.

A component: ``start`` loads (or trains) the router off the event loop and starts the batchers;
until then every call is UNAVAILABLE with reason NOT_READY.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hivemesh.language.batching import MicroBatcher
from hivemesh.language.nlu.encoders import HashedLexicalEncoder, TextEncoder
from hivemesh.language.nlu.factory import sentence_encoder
from hivemesh.language.nlu.minilm import MiniLmEncoder
from hivemesh.language.nlu.router import Prediction, Router
from hivemesh.language.settings import LanguageConfig
from hivemesh.mesh.errors import InvalidArgument, Unavailable


@dataclass(frozen=True)
class Embeddings:
    vectors: tuple[tuple[float, ...], ...]
    model: str
    dimensions: int


class LanguageEngine:
    def __init__(
        self,
        load: Callable[[], Router],
        config: LanguageConfig,
        env: Mapping[str, str],
        on_batch: Callable[[str, int], None] | None = None,
    ) -> None:
        self._load = load
        self._config = config
        self._env = env
        self._on_batch = on_batch
        self._router: Router | None = None
        self._router_sha256 = ""
        self._encoder: TextEncoder | None = None
        self._understand: MicroBatcher[str, Prediction] | None = None
        self._embed: MicroBatcher[str, np.ndarray] | None = None

    @property
    def router(self) -> Router:
        if self._router is None:
            raise Unavailable("the intent router is not loaded yet", reason="NOT_READY")
        return self._router

    @property
    def router_sha256(self) -> str:
        """``Router.sha256`` of the loaded router; empty until it is loaded."""
        return self._router_sha256

    @property
    def models(self) -> tuple[str, ...]:
        """Names of the encoders loaded: the router's and Embed's (empty until started)."""
        if self._router is None or self._encoder is None:
            return ()
        router = self._router.encoder.name if self._router.encoder is not None else "lexical"
        return (router, self._encoder.name)

    @property
    def in_flight(self) -> int:
        """Understand and Embed items queued in or computing in the batchers."""
        return sum(b.pending for b in (self._understand, self._embed) if b is not None)

    @property
    def heavy_methods(self) -> tuple[str, ...]:
        """The methods that run a local neural model (MiniLM) here, rather than n-gram arithmetic
        or a remote API."""
        heavy = []
        if self._router is not None and isinstance(self._router.encoder, MiniLmEncoder):
            heavy.append("Understand")
        if isinstance(self._encoder, MiniLmEncoder):
            heavy.append("Embed")
        return tuple(heavy)

    async def start(self) -> None:
        router = await asyncio.to_thread(self._load)
        self._router_sha256 = await asyncio.to_thread(router.sha256)
        encoder = self._embedding_encoder(router)
        self._router, self._encoder = router, encoder
        self._understand = MicroBatcher(
            "understand", router.predict, self._config.batch, self._observer("understand")
        )
        self._embed = MicroBatcher("embed", self._encode_rows, self._config.batch, self._observer("embed"))
        await self._understand.start()
        await self._embed.start()
        # Sentence encoders load lazily; do it now so the first request does not pay for it.
        await self._embed.submit("warm up")
        await self._understand.submit("warm up")

    async def stop(self, grace_s: float) -> None:
        for batcher in (self._understand, self._embed):
            if batcher is not None:
                await batcher.stop(grace_s)

    async def classify(self, text: str) -> Prediction:
        if self._understand is None:
            raise Unavailable("the language engine is not started", reason="NOT_READY")
        return await self._understand.submit(text)

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        if self._embed is None or self._encoder is None:
            raise Unavailable("the language engine is not started", reason="NOT_READY")
        for position, text in enumerate(texts):
            if not text.strip():
                raise InvalidArgument.field(
                    f"texts[{position}]", "must contain a non-space character", reason="EMPTY_TEXT"
                )
        rows = await asyncio.gather(*(self._embed.submit(text) for text in texts))
        return Embeddings(
            vectors=tuple(tuple(float(v) for v in row) for row in rows),
            model=self._encoder.name,
            dimensions=self._encoder.dimensions,
        )

    def _encode_rows(self, texts: Sequence[str]) -> list[np.ndarray]:
        assert self._encoder is not None  # set before the batcher starts
        return list(self._encoder.encode(texts))

    def _embedding_encoder(self, router: Router) -> TextEncoder:
        choice = self._config.embed_encoder
        if choice is None:
            return router.encoder or HashedLexicalEncoder(self._config.lexical_dimensions)
        if choice == router.meta.encoder and router.encoder is not None:
            return router.encoder
        return sentence_encoder(choice, self._env) or HashedLexicalEncoder(self._config.lexical_dimensions)

    def _observer(self, name: str) -> Callable[[int], None] | None:
        observe = self._on_batch
        if observe is None:
            return None
        return lambda size: observe(name, size)


def default_loader(model_dir: Path | None, data_dir: Path, env: Mapping[str, str]) -> Callable[[], Router]:
    from hivemesh.language.models import load_router  # noqa: PLC0415 - keeps engine importable alone

    return lambda: load_router(model_dir, data_dir, env)
