"""Shadow mode: a candidate router beside the live one, off the hot path."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest, start_http_server

from hivemesh.language.cli import main
from hivemesh.language.nlu.factory import encoder_loader
from hivemesh.language.nlu.router import Prediction, Router
from hivemesh.language.settings import LanguageConfig
from hivemesh.language.shadow import ShadowConfig, ShadowMetrics, ShadowRouter, Tallies, read_tallies
from hivemesh.language.v1 import language_service_pb2 as pb
from hivemesh.language.v1.language_service_pb2_grpc import LanguageServiceStub
from hivemesh.mesh.config import ConfigError
from tests.language.nlu_data import write_router_without
from tests.support import make_settings, start_mesh

TEXTS = [
    "spell necessary",
    "how do you spell rhythm",
    "hello there",
    "good morning",
    "what is 12 times 7",
    "convert 5 miles to km",
    "set a timer for 10 minutes",
    "what day of the week is 2026-12-25",
    "add milk to my shopping list",
    "who wrote war and peace",
]


def _prediction(intent: str) -> Prediction:
    return Prediction(intent, 0.9, intent == "oos", 1.0, ())


def _shadow(predict: Callable[[Sequence[str]], list[Prediction]], queue: int = 256) -> ShadowRouter:
    return ShadowRouter(lambda: predict, ShadowConfig(model=Path("unused"), queue=queue))


async def test_agreement_and_disagreements_are_counted_by_intent_pair() -> None:
    def candidate(texts: Sequence[str]) -> list[Prediction]:
        return [_prediction("oos" if "spell" in t else t.split()[0]) for t in texts]

    shadow = _shadow(candidate)
    await shadow.start()
    try:
        for text, live in [
            ("calculator a", "calculator"),
            ("spell b", "spell"),
            ("spell c", "spell"),
            ("x", "y"),
        ]:
            shadow.offer(text, live)
        await shadow.idle()
    finally:
        await shadow.stop(1.0)
    tallies = shadow.tallies()
    assert tallies.outcomes == {"agreed": 1, "disagreed": 3, "dropped": 0, "failed": 0}
    assert tallies.disagreements == {("spell", "oos"): 2, ("y", "x"): 1}
    assert tallies.agreement == 0.25


async def test_a_full_queue_drops_and_counts_instead_of_waiting() -> None:
    shadow = _shadow(lambda texts: [_prediction("a") for _ in texts], queue=3)
    await shadow.start()
    try:
        # Offered without yielding to the loop: the worker has taken none of them yet.
        for n in range(10):
            shadow.offer(f"text {n}", "a")
        await shadow.idle()
    finally:
        await shadow.stop(1.0)
    assert shadow.tallies().outcomes == {"agreed": 3, "disagreed": 0, "dropped": 7, "failed": 0}


async def test_a_failing_candidate_is_counted_and_the_shadow_keeps_going() -> None:
    calls = []

    def candidate(texts: Sequence[str]) -> list[Prediction]:
        calls.append(list(texts))
        if len(calls) == 1:
            raise RuntimeError("candidate broke")
        return [_prediction("a") for _ in texts]

    shadow = _shadow(candidate)
    await shadow.start()
    try:
        shadow.offer("one", "a")
        await shadow.idle()
        shadow.offer("two", "a")
        await shadow.idle()
    finally:
        await shadow.stop(1.0)
    assert shadow.tallies().outcomes == {"agreed": 1, "disagreed": 0, "dropped": 0, "failed": 1}


async def test_the_live_answer_does_not_wait_for_the_candidate() -> None:
    release = threading.Event()

    def slow_candidate(texts: Sequence[str]) -> list[Prediction]:
        release.wait(10)
        return [_prediction("a") for _ in texts]

    async def live(text: str) -> Prediction:
        return _prediction("a")

    shadow = _shadow(slow_candidate)
    await shadow.start()
    try:
        classify = shadow.shadowed(live)
        answers = await asyncio.wait_for(asyncio.gather(*(classify(f"t{n}") for n in range(5))), 2.0)
        assert [a.intent for a in answers] == ["a"] * 5
        release.set()
        await shadow.idle()
    finally:
        release.set()
        await shadow.stop(1.0)
    assert shadow.tallies().outcomes["agreed"] == 5


def test_the_counters_read_back_from_the_exposition() -> None:
    shadow = _shadow(lambda texts: [])
    registry = CollectorRegistry()
    registry.register(ShadowMetrics(shadow))
    assert read_tallies(generate_latest(registry).decode()) == Tallies(
        {"agreed": 0, "disagreed": 0, "dropped": 0, "failed": 0}, {}
    )
    assert read_tallies("# nothing here\n") is None


def test_a_shadow_model_without_a_router_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="HIVEMESH_NLU_SHADOW_MODEL"):
        LanguageConfig.from_env({"HIVEMESH_NLU_SHADOW_MODEL": str(tmp_path)})
    assert LanguageConfig.from_env({}).shadow is None


async def test_the_service_answers_the_same_with_a_shadow_and_counts_agreement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    candidate_dir = await asyncio.to_thread(
        write_router_without, {"spell", "greeting"}, tmp_path / "candidate"
    )
    plain = await start_mesh(make_settings(tmp_path / "plain"), services=["language"])
    # The language service reads its own settings from the environment when it is built.
    monkeypatch.setenv("HIVEMESH_NLU_SHADOW_MODEL", str(candidate_dir))
    shadowed = await start_mesh(make_settings(tmp_path / "shadowed"), services=["language"])
    server, thread = start_http_server(0, addr="127.0.0.1", registry=shadowed.metrics.registry)
    try:
        without = LanguageServiceStub(plain.client("language"))
        beside = LanguageServiceStub(shadowed.client("language"))
        replies = [await beside.Understand(pb.UnderstandRequest(text=t)) for t in TEXTS]
        assert replies == [await without.Understand(pb.UnderstandRequest(text=t)) for t in TEXTS]

        candidate = Router.load(candidate_dir, encoder_loader({}))
        expected = [(r.intent, p.intent) for r, p in zip(replies, candidate.predict(TEXTS), strict=True)]
        assert any(live == "spell" for live, _ in expected)
        tallies = await _compared(shadowed.metrics.registry, len(TEXTS))
        agreed = sum(live == cand for live, cand in expected)
        assert tallies.outcomes == {
            "agreed": agreed,
            "disagreed": len(TEXTS) - agreed,
            "dropped": 0,
            "failed": 0,
        }
        assert sum(tallies.disagreements.values()) == len(TEXTS) - agreed
        assert all(live != cand for live, cand in tallies.disagreements)
        assert {live for live, _ in tallies.disagreements} >= {"spell", "greeting"}

        code = await asyncio.to_thread(
            main, ["shadow-report", "--metrics", f"127.0.0.1:{server.server_port}"]
        )
        out = capsys.readouterr().out
        assert code == 0
        assert f"{len(TEXTS)} requests compared, agreement {agreed / len(TEXTS):.1%}" in out
        assert "spell -> " in out
        below = ["shadow-report", "--metrics", f"127.0.0.1:{server.server_port}", "--min-agreement", "0.99"]
        assert await asyncio.to_thread(main, below) == 5
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        await shadowed.stop()
        await plain.stop()


async def _compared(registry: CollectorRegistry, count: int) -> Tallies:
    """The shadow's tallies once it has compared ``count`` requests (it runs after the replies)."""
    for _ in range(200):
        tallies = read_tallies(generate_latest(registry).decode())
        assert tallies is not None
        if tallies.outcomes["agreed"] + tallies.outcomes["disagreed"] + tallies.outcomes["failed"] >= count:
            return tallies
        await asyncio.sleep(0.05)
    raise AssertionError(f"the shadow compared fewer than {count} requests in 10 s")


def test_shadow_report_says_when_no_shadow_is_exported(capsys: pytest.CaptureFixture[str]) -> None:
    registry = CollectorRegistry()
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        code = main(["shadow-report", "--metrics", f"http://127.0.0.1:{server.server_port}/metrics"])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert code == 2
    assert "HIVEMESH_NLU_SHADOW_MODEL" in capsys.readouterr().err
