"""Wiring of the language service: the engine (router + embeddings behind micro-batchers), the
understanding pipeline with slot extraction, the Generate backend, and the shadow router when one
is configured."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hivemesh.common.v1.release_pb2 import ReleasePart
from hivemesh.language import slots
from hivemesh.language.engine import LanguageEngine, default_loader
from hivemesh.language.generate import GenerateBackend, build_backend
from hivemesh.language.generate.config import llm_config_from_env, pool_config_from_env
from hivemesh.language.models import load_router
from hivemesh.language.nlu.router import Prediction
from hivemesh.language.servicer import LanguageServicer
from hivemesh.language.settings import LanguageConfig
from hivemesh.language.shadow import ShadowMetrics, ShadowRouter
from hivemesh.language.slots.extract import warm_up
from hivemesh.language.understanding import Understander
from hivemesh.language.v1 import language_service_pb2 as pb
from hivemesh.language.v1.language_service_pb2_grpc import add_LanguageServiceServicer_to_server
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.config import Settings
from hivemesh.mesh.credentials import guard_for
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.server import Component, ServiceApp
from hivemesh.world import zones

# The release names of the router trained from hivemesh's own intents and of the built-in composer.
BUILTIN_ROUTER = "builtin-intents"
BUILTIN_LLM = "builtin"


def read_slots(text: str, intent: str, *, now: datetime) -> list[pb.Slot]:
    return slots.to_proto(slots.extract_slots(text, intent, now=now))


class _SlotReaders:
    """Readies the slot readers off the event loop when the service starts."""

    async def start(self) -> None:
        await asyncio.to_thread(warm_up)

    async def stop(self, grace_s: float) -> None:
        return None


class _BackendCloser:
    """Closes the Generate backend's connections when the service stops."""

    def __init__(self, backend: GenerateBackend) -> None:
        self._backend = backend

    async def start(self) -> None:
        return None

    async def stop(self, grace_s: float) -> None:
        await self._backend.aclose()


class _InFlight(Collector):
    """The engine's calls in flight, read at scrape time: what the GPU pool's autoscaler follows."""

    def __init__(self, engine: LanguageEngine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "hivemesh_language_inflight_calls",
            "Understand and Embed calls queued in or computing in this replica's micro-batchers.",
            value=self._engine.in_flight,
        )


def build(settings: Settings, channels: ChannelFactory, metrics: Metrics) -> ServiceApp:
    env = dict(os.environ)
    config = LanguageConfig.from_env(env)
    engine = LanguageEngine(default_loader(config.model, settings.data_dir, env), config, env)
    backend = build_backend(env, metrics)
    metrics.registry.register(_InFlight(engine))
    components: list[Component] = [engine, _SlotReaders(), _BackendCloser(backend)]
    classify: Callable[[str], Awaitable[Prediction]] = engine.classify
    if config.shadow is not None:
        shadow = ShadowRouter(_candidate_loader(config.shadow.model, settings, env), config.shadow)
        metrics.registry.register(ShadowMetrics(shadow))
        classify = shadow.shadowed(engine.classify)
        components.append(shadow)
    understander = Understander(classify, read_slots, slots.split_compound, lambda: datetime.now(UTC))
    servicer = LanguageServicer(
        understander,
        engine,
        backend,
        max_reply_bytes=settings.server.max_message_bytes,
        # A request that names no time zone is read in this machine's.
        default_zone=zones.server_zone(),
    )
    router_id = config.model.name if config.model is not None else BUILTIN_ROUTER
    pool = pool_config_from_env(env)
    llm = pool.backends[0].llm if pool is not None else llm_config_from_env(env)
    llm_id = BUILTIN_LLM if llm is None else llm.model or "default"

    def describe(part: ReleasePart) -> None:
        part.router.id = router_id
        part.router.sha256 = engine.router_sha256
        part.llm.id = llm_id
        runtime = part.runtime
        runtime.device = config.device
        runtime.models.extend((*engine.models, llm_id))
        runtime.batch_capacity = config.capacity
        heavy = config.heavy_methods
        runtime.heavy_methods.extend(engine.heavy_methods if heavy is None else heavy)

    return ServiceApp(
        name="language",
        guard=guard_for(settings, "language"),
        register=lambda server: add_LanguageServiceServicer_to_server(servicer, server),
        describe=describe,
        components=components,
    )


def _candidate_loader(
    model: Path, settings: Settings, env: Mapping[str, str]
) -> Callable[[], Callable[[Sequence[str]], list[Prediction]]]:
    return lambda: load_router(model, settings.data_dir, env).predict
