"""Several model servers behind Generate: scripted OpenAI-compatible servers on loopback that are
healthy, slow, failing, rate-limiting or killed mid-stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from hivemesh.common.v1 import content_pb2
from hivemesh.language.generate import build_backend
from hivemesh.language.generate.config import Role, pool_config_from_env
from hivemesh.language.generate.pool import BackendPool, LLMMetrics
from hivemesh.language.v1 import language_service_pb2 as pb
from hivemesh.language.v1.language_service_pb2_grpc import LanguageServiceStub
from hivemesh.mesh import deadlines
from hivemesh.mesh.config import ConfigError
from hivemesh.mesh.errors import Unavailable
from tests.language.model_servers import ModelServer
from tests.support import make_settings, start_mesh

Servers = Callable[..., Awaitable[list[ModelServer]]]


def ask(session: str = "") -> pb.GenerateRequest:
    return pb.GenerateRequest(
        messages=[pb.ChatMessage(role=content_pb2.ROLE_USER, content="hello")], session_id=session
    )


async def text(pool: BackendPool, request: pb.GenerateRequest) -> str:
    return "".join([p.text_delta async for p in pool.generate(request) if p.text_delta])


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    started: list[ModelServer] = []

    async def start(*names: str) -> list[ModelServer]:
        made = [await ModelServer(name).start() for name in names]
        started.extend(made)
        return made

    yield start
    for server in started:
        await server.kill()


@pytest.fixture
async def pools() -> AsyncIterator[Callable[..., BackendPool]]:
    made: list[BackendPool] = []

    def build(
        entries: list[tuple[str, ModelServer]], registry: CollectorRegistry | None = None, **env: str
    ) -> BackendPool:
        spec = ", ".join(f"{role}@{server.url}" for role, server in entries)
        config = pool_config_from_env({"HIVEMESH_LLM_BACKENDS": spec, "HIVEMESH_LLM_TIMEOUT": "5", **env})
        assert config is not None
        pool = BackendPool(config, LLMMetrics(registry))
        made.append(pool)
        return pool

    yield build
    for pool in made:
        await pool.aclose()


# --- configuration ------------------------------------------------------------------------------


def test_backends_parse_roles_weights_and_per_role_credentials() -> None:
    config = pool_config_from_env(
        {
            "HIVEMESH_LLM_BACKENDS": "primary@http://vllm-0:8000/v1, primary:2.5@http://vllm-1:8000/v1/,"
            " fallback@http://cpu:8080/v1, hosted@https://api.example.com/v1",
            "HIVEMESH_LLM_MODEL": "qwen",
            "HIVEMESH_LLM_HOSTED_API_KEY": "sk-hosted",
            "HIVEMESH_LLM_HOSTED_MODEL": "gpt-4o-mini",
            "HIVEMESH_LLM_EJECT_AFTER": "2",
            "HIVEMESH_LLM_EJECT_FOR": "30s",
        }
    )
    assert config is not None
    assert [(b.role, b.weight) for b in config.backends] == [
        (Role.PRIMARY, 1.0),
        (Role.PRIMARY, 2.5),
        (Role.FALLBACK, 1.0),
        (Role.HOSTED, 1.0),
    ]
    assert config.backends[1].llm.base_url == "http://vllm-1:8000/v1"
    assert [b.llm.model for b in config.backends] == ["qwen", "qwen", "qwen", "gpt-4o-mini"]
    assert [b.llm.api_key for b in config.backends] == [None, None, None, "sk-hosted"]
    # The session id goes to our own servers, not to a hosted API.
    assert [b.llm.session_header for b in config.backends] == ["x-session-id"] * 3 + [None]
    assert (config.eject_after, config.eject_for_s) == (2, 30.0)
    assert pool_config_from_env({}) is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HIVEMESH_LLM_BACKENDS": "gpu@http://a/v1"}, "role 'gpu'"),
        ({"HIVEMESH_LLM_BACKENDS": "primary@ftp://a/v1"}, "entry 1 must be role[:weight]@"),
        ({"HIVEMESH_LLM_BACKENDS": "primary@http://a/v1,primary:0@http://b/v1"}, "entry 2 needs a positive"),
        ({"HIVEMESH_LLM_BACKENDS": "primary@http://a/v1,primary@http://a/v1"}, "twice"),
        (
            {"HIVEMESH_LLM_BACKENDS": "primary@http://a/v1", "HIVEMESH_LLM_BASE_URL": "http://b/v1"},
            "not both",
        ),
        ({"HIVEMESH_LLM_BACKENDS": "primary@http://a/v1", "HIVEMESH_LLM_EJECT_AFTER": "0"}, "EJECT_AFTER"),
    ],
)
def test_bad_backends_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match="HIVEMESH_LLM") as raised:
        pool_config_from_env(env)
    assert message in str(raised.value)


async def test_build_backend_makes_a_pool_only_when_asked() -> None:
    pool = build_backend({"HIVEMESH_LLM_BACKENDS": "primary@http://127.0.0.1:9/v1"})
    try:
        assert isinstance(pool, BackendPool)
    finally:
        await pool.aclose()
    single = build_backend({"HIVEMESH_LLM_BASE_URL": "http://127.0.0.1:9/v1"})
    try:
        assert not isinstance(single, BackendPool)
    finally:
        await single.aclose()


# --- choosing -----------------------------------------------------------------------------------


async def test_a_session_stays_on_its_server_and_sessions_spread(
    servers: Servers, pools: Callable[..., BackendPool]
) -> None:
    a, b, c = await servers("a", "b", "c")
    pool = pools([("primary", a), ("primary", b), ("primary", c)])
    homes: dict[str, set[str]] = {}
    for round_ in range(3):
        for n in range(24):
            answer = await text(pool, ask(f"session-{n}"))
            homes.setdefault(f"session-{n}", set()).add(answer)
        assert round_ >= 0
    assert all(len(served) == 1 for served in homes.values()), homes
    used = {next(iter(served)) for served in homes.values()}
    assert used == {"from a.", "from b.", "from c."}
    # The servers saw the session ids, each only its own sessions.
    for server in (a, b, c):
        assert set(server.sessions()) <= set(homes)
        assert all(homes[s] == {f"from {server.name}."} for s in server.sessions())


async def test_calls_without_a_session_go_to_the_least_busy_server(
    servers: Servers, pools: Callable[..., BackendPool]
) -> None:
    a, b = await servers("a", "b")
    a.mode = b.mode = "slow"
    a.delay_s = b.delay_s = 0.3
    pool = pools([("primary", a), ("primary", b)])
    answers = await asyncio.gather(*(text(pool, ask()) for _ in range(6)))
    assert sorted(answers) == ["from a."] * 3 + ["from b."] * 3


async def test_a_busy_home_server_spills_its_sessions_over(
    servers: Servers, pools: Callable[..., BackendPool]
) -> None:
    a, b = await servers("a", "b")
    a.mode = b.mode = "slow"
    a.delay_s = b.delay_s = 0.3
    pool = pools([("primary", a), ("primary", b)])
    # Eight concurrent calls of one session: its server takes its bounded share, the other the rest.
    answers = await asyncio.gather(*(text(pool, ask("one-session")) for _ in range(8)))
    assert set(answers) == {"from a.", "from b."}
    assert max(answers.count("from a."), answers.count("from b.")) <= 5


# --- failing over -------------------------------------------------------------------------------


async def test_a_failing_primary_hands_over_to_the_fallback_and_is_ejected(
    servers: Servers, pools: Callable[..., BackendPool]
) -> None:
    primary, fallback = await servers("primary", "fallback")
    primary.mode = "fail"
    pool = pools([("primary", primary), ("fallback", fallback)], HIVEMESH_LLM_EJECT_AFTER="1")
    for _ in range(5):
        assert await text(pool, ask("s")) == "from fallback."
    # Ejected after its first 503: later calls do not wait on it.
    assert len(primary.completions) == 1
    assert len(fallback.completions) == 5


async def test_a_rate_limited_server_is_left_alone_for_its_retry_after(
    servers: Servers, pools: Callable[..., BackendPool]
) -> None:
    primary, hosted = await servers("primary", "hosted")
    primary.mode, primary.retry_after_s = "ratelimit", 30
    pool = pools([("primary", primary), ("hosted", hosted)], HIVEMESH_LLM_EJECT_AFTER="5")
    for _ in range(4):
        assert await text(pool, ask("s")) == "from hosted."
    assert len(primary.completions) == 1
    ejected = pool.endpoints[0]
    assert ejected.held
    assert 25 < ejected.ejected_until - time.monotonic() <= 30
    # The hosted API never received the session id.
    assert hosted.sessions() == [""] * 4


async def test_a_slow_server_leaves_time_to_fail_over_within_the_deadline(
    servers: Servers, pools: Callable[..., BackendPool]
) -> None:
    primary, fallback = await servers("primary", "fallback")
    primary.mode, primary.delay_s = "slow", 10.0
    pool = pools([("primary", primary), ("fallback", fallback)])
    started = time.monotonic()
    with deadlines.deadline(2.0):
        answer = await text(pool, ask("s"))
    elapsed = time.monotonic() - started
    assert answer == "from fallback."
    assert 0.9 < elapsed < 2.0  # half the deadline on the slow server, then the fallback


async def test_every_server_failing_fails_the_call_retryably(
    servers: Servers, pools: Callable[..., BackendPool]
) -> None:
    a, b = await servers("a", "b")
    a.mode = b.mode = "fail"
    pool = pools([("primary", a), ("fallback", b)])
    with pytest.raises(Unavailable) as raised:
        await text(pool, ask("s"))
    assert raised.value.reason == "LLM_UPSTREAM_ERROR"
    assert raised.value.metadata["backend"] == "fallback:" + b.url.split("/")[2]


# --- streams that broke -------------------------------------------------------------------------


async def test_a_stream_cut_after_text_is_not_restarted_elsewhere(
    servers: Servers, pools: Callable[..., BackendPool]
) -> None:
    primary, fallback = await servers("primary", "fallback")
    primary.mode = "cut"
    registry = CollectorRegistry()
    pool = pools([("primary", primary), ("fallback", fallback)], registry)
    seen: list[str] = []

    async def consume() -> None:
        async for piece in pool.generate(ask("s")):
            seen.append(piece.text_delta)

    with pytest.raises(Unavailable) as raised:
        await consume()
    assert seen == ["from primary."]
    assert raised.value.reason == "LLM_STREAM_INTERRUPTED"
    assert raised.value.metadata["delivered"] == "true"
    # The fallback was never asked: the caller's text is not repeated and not paid for twice.
    assert fallback.completions == []
    name = "primary:" + primary.url.split("/")[2]
    assert (
        registry.get_sample_value(
            "hivemesh_llm_calls_total", {"backend": name, "role": "primary", "outcome": "interrupted"}
        )
        == 1
    )


async def test_a_completed_stream_is_billed_once(servers: Servers, pools: Callable[..., BackendPool]) -> None:
    primary, fallback = await servers("primary", "fallback")
    registry = CollectorRegistry()
    pool = pools([("primary", primary), ("fallback", fallback)], registry)
    pieces = [p async for p in pool.generate(ask("s"))]
    assert [p.WhichOneof("kind") for p in pieces] == ["text_delta", "usage", "finish_reason"]
    assert (len(primary.completions), len(fallback.completions)) == (1, 0)
    name = "primary:" + primary.url.split("/")[2]
    tokens = {
        kind: registry.get_sample_value(
            "hivemesh_llm_tokens_total", {"backend": name, "role": "primary", "kind": kind}
        )
        for kind in ("prompt", "completion")
    }
    assert tokens == {"prompt": 7, "completion": 3}


async def test_a_killed_server_is_probed_back_and_gets_its_sessions_again(
    servers: Servers, pools: Callable[..., BackendPool]
) -> None:
    primary, fallback = await servers("primary", "fallback")
    pool = pools(
        [("primary", primary), ("fallback", fallback)],
        HIVEMESH_LLM_EJECT_AFTER="1",
        HIVEMESH_LLM_EJECT_FOR="0.2",
    )
    assert await text(pool, ask("s")) == "from primary."
    await primary.kill()
    assert await text(pool, ask("s")) == "from fallback."
    await primary.start()  # the same port
    await asyncio.sleep(0.3)
    # The first call after the ejection starts the probe and is served by the fallback meanwhile.
    answers = [await text(pool, ask("s"))]
    for _ in range(100):
        if not pool.endpoints[0].ejected:
            break
        await asyncio.sleep(0.02)
    assert [r.path for r in primary.received] == ["/v1/chat/completions", "/v1/models"]
    answers += [await text(pool, ask("s")) for _ in range(3)]
    assert answers == ["from fallback."] + ["from primary."] * 3


# --- through the language service ---------------------------------------------------------------


async def test_generate_fails_over_within_the_callers_deadline_and_records_the_backend(
    servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    primary, fallback = await servers("primary", "fallback")
    primary.mode, primary.delay_s = "slow", 10.0
    monkeypatch.setenv("HIVEMESH_LLM_BACKENDS", f"primary@{primary.url}, fallback@{fallback.url}")
    mesh = await start_mesh(make_settings(tmp_path / "data"), services=["language"])
    try:
        stub = LanguageServiceStub(mesh.client("language"))
        started = time.monotonic()
        pieces = [p async for p in stub.Generate(ask("session-7"), timeout=2.0)]
        elapsed = time.monotonic() - started
        assert "".join(p.text_delta for p in pieces) == "from fallback."
        assert elapsed < 2.0
        # Both servers were asked for the session, the fallback once the primary had used half the time.
        assert primary.sessions() == ["session-7"]
        assert fallback.sessions() == ["session-7"]
        samples = {
            (s.labels["backend"].split(":")[0], s.labels["outcome"]): s.value
            for metric in mesh.metrics.registry.collect()
            for s in metric.samples
            if s.name == "hivemesh_llm_calls_total"
        }
        assert samples == {("primary", "failed_over"): 1, ("fallback", "ok"): 1}
    finally:
        await mesh.stop()


async def test_the_span_names_the_backend_and_the_tokens_it_billed(
    servers: Servers, pools: Callable[..., BackendPool]
) -> None:
    primary, fallback = await servers("primary", "fallback")
    primary.mode = "fail"
    pool = pools([("primary", primary), ("fallback", fallback)])
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("test").start_as_current_span("Generate"):
        assert await text(pool, ask("s")) == "from fallback."
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["hivemesh.llm.backend"] == "fallback:" + fallback.url.split("/")[2]
    assert span.attributes["gen_ai.usage.input_tokens"] == 7
    assert span.attributes["gen_ai.usage.output_tokens"] == 3
    provider.shutdown()
