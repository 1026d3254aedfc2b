from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import grpc
import numpy as np
import pytest

from hivemesh.common.v1 import content_pb2
from hivemesh.language.cli import main
from hivemesh.language.v1 import language_service_pb2 as pb
from hivemesh.language.v1.language_service_pb2_grpc import LanguageServiceStub
from tests.language.nlu_data import write_dataset
from tests.support import RunningMesh, make_settings, rpc_error, start_mesh

if TYPE_CHECKING:
    from hivemesh.language.v1.language_service_pb2_grpc import LanguageServiceAsyncStub


@pytest.fixture
async def language(tmp_path: Path) -> AsyncIterator[LanguageServiceAsyncStub]:
    mesh = await start_mesh(make_settings(tmp_path / "data"), services=["language"])
    try:
        yield LanguageServiceStub(mesh.client("language"))
    finally:
        await mesh.stop()


async def test_understand_shipped_intents_with_slots(language: LanguageServiceAsyncStub) -> None:
    reply = await language.Understand(pb.UnderstandRequest(text="convert 5 miles to kilometers"))
    assert reply.intent == "unit_conversion"
    assert not reply.out_of_scope
    assert 0.0 < reply.confidence <= 1.0
    assert reply.text == "convert 5 miles to kilometers"
    assert reply.slots, "the slot extractor found nothing in a unit conversion"
    assert len(reply.alternatives) == 3
    assert all(a.intent != reply.intent for a in reply.alternatives)


async def test_understand_flags_out_of_scope(language: LanguageServiceAsyncStub) -> None:
    reply = await language.Understand(
        pb.UnderstandRequest(text="explain the causes of the french revolution")
    )
    assert reply.out_of_scope
    assert reply.intent == "oos"
    assert not reply.slots


@pytest.mark.parametrize("text", ["asdkj qwe zzz", "qwerty", "lkjh poiu mnbv"])
async def test_gibberish_is_out_of_scope(language: LanguageServiceAsyncStub, text: str) -> None:
    reply = await language.Understand(pb.UnderstandRequest(text=text))
    assert (reply.intent, reply.out_of_scope) == ("oos", True)
    assert reply.confidence > 0.5
    hello = await language.Understand(pb.UnderstandRequest(text="helo"))
    assert (hello.intent, hello.out_of_scope) == ("greeting", False)


async def test_understand_reads_times_in_the_users_zone(language: LanguageServiceAsyncStub) -> None:
    text = "remind me at 5pm to call mum"
    tokyo = await language.Understand(pb.UnderstandRequest(text=text, time_zone="Asia/Tokyo"))
    paris = await language.Understand(pb.UnderstandRequest(text=text, time_zone="Europe/Paris"))
    dues = {}
    for name, reply in (("Asia/Tokyo", tokyo), ("Europe/Paris", paris)):
        (due,) = [s for s in reply.slots if s.name == "due"]
        local = due.date_time.ToDatetime(tzinfo=ZoneInfo(name))
        assert (local.hour, local.minute) == (17, 0)
        dues[name] = local
    # 5pm in Tokyo is 7 or 8 hours before 5pm in Paris, whichever days they fall on.
    gap = (dues["Europe/Paris"] - dues["Asia/Tokyo"]) % timedelta(days=1)
    assert gap in (timedelta(hours=7), timedelta(hours=8))


@pytest.mark.parametrize(("zone", "reason"), [("Mars/Olympus_Mons", "UNKNOWN_TIME_ZONE"), ("5pm", "")])
async def test_understand_refuses_an_unknown_zone(
    language: LanguageServiceAsyncStub, zone: str, reason: str
) -> None:
    status = await rpc_error(language.Understand(pb.UnderstandRequest(text="what day is it", time_zone=zone)))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.metadata["field"] == "time_zone"
    if reason:
        assert status.reason == reason


async def test_compound_request_is_understood_part_by_part(language: LanguageServiceAsyncStub) -> None:
    reply = await language.Understand(
        pb.UnderstandRequest(text="convert 5 miles to km and add eggs to my shopping list")
    )
    assert [part.intent for part in reply.parts] == ["unit_conversion", "list_add"]
    assert reply.intent == "unit_conversion"
    assert all(part.text for part in reply.parts)


async def test_understand_offers_only_installed_intents(language: LanguageServiceAsyncStub) -> None:
    text = "convert 5 miles to kilometers"
    everything = await language.Understand(pb.UnderstandRequest(text=text))
    assert not everything.without_tool
    offered = {a.intent for a in everything.alternatives}
    installed = ["calculator", "unit_conversion"]
    reply = await language.Understand(pb.UnderstandRequest(text=text, available_intents=installed))
    assert (reply.intent, reply.without_tool) == ("unit_conversion", False)
    assert {a.intent for a in reply.alternatives} == {
        i for i in offered if i in installed or i in {"oos", "greeting", "remember", "recall"}
    }
    assert offered - {a.intent for a in reply.alternatives}, "every alternative was installed"


async def test_understand_marks_an_intent_no_installed_tool_serves(
    language: LanguageServiceAsyncStub,
) -> None:
    request = pb.UnderstandRequest(
        text="convert 5 miles to km and add eggs to my shopping list",
        available_intents=["list_add"],
    )
    reply = await language.Understand(request)
    assert [(p.intent, p.without_tool) for p in reply.parts] == [
        ("unit_conversion", True),
        ("list_add", False),
    ]
    assert reply.parts[0].slots, "an intent without a tool is still read"
    hello = await language.Understand(pb.UnderstandRequest(text="hello", available_intents=["list_add"]))
    away = await language.Understand(
        pb.UnderstandRequest(text="explain the french revolution", available_intents=["list_add"])
    )
    assert not hello.without_tool
    assert not away.without_tool
    messages = [pb.ChatMessage(role=content_pb2.ROLE_USER, content=request.text)]
    generated = language.Generate(pb.GenerateRequest(messages=messages, understanding=reply))
    text = "".join([piece.text_delta async for piece in generated])
    assert text.split("\n")[0] == "I understood that as 'unit_conversion', but no tool for it is installed."


async def test_understand_refuses_a_malformed_available_intent(language: LanguageServiceAsyncStub) -> None:
    request = pb.UnderstandRequest(text="hello", available_intents=["calculator", "Not An Intent"])
    status = await rpc_error(language.Understand(request))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in status.field_violations] == ["available_intents"]


async def test_understand_rejects_empty_text(language: LanguageServiceAsyncStub) -> None:
    status = await rpc_error(language.Understand(pb.UnderstandRequest(text="")))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert any(path == "text" for path, _ in status.field_violations)


async def test_embed_returns_normalised_vectors(language: LanguageServiceAsyncStub) -> None:
    texts = ["my sister's name is Ana", "I parked on level 3", "what's my sister's name?"]
    reply = await language.Embed(pb.EmbedRequest(texts=texts))
    assert reply.dimensions == 512
    assert reply.model
    vectors = np.array([e.values for e in reply.embeddings])
    assert vectors.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    similarity = vectors @ vectors[2]
    assert similarity[0] > similarity[1] + 0.3


async def test_embed_rejects_bad_input(language: LanguageServiceAsyncStub) -> None:
    status = await rpc_error(language.Embed(pb.EmbedRequest(texts=[])))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    status = await rpc_error(language.Embed(pb.EmbedRequest(texts=["fine", "   "])))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.reason == "EMPTY_TEXT"
    assert status.field_violations == (("texts[1]", "must contain a non-space character"),)


async def test_generate_streams_to_a_finish_reason(language: LanguageServiceAsyncStub) -> None:
    request = pb.GenerateRequest(messages=[pb.ChatMessage(role=content_pb2.ROLE_USER, content="hello")])
    pieces = [piece async for piece in language.Generate(request)]
    assert pieces[-1].finish_reason == pb.FINISH_REASON_STOP


async def test_service_loads_a_trained_router(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_dataset(tmp_path / "intents.json")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "model")]) == 0
    monkeypatch.setenv("HIVEMESH_NLU_MODEL", str(tmp_path / "model"))
    mesh: RunningMesh = await start_mesh(make_settings(tmp_path / "data"), services=["language"])
    try:
        stub = LanguageServiceStub(mesh.client("language"))
        reply = await stub.Understand(pb.UnderstandRequest(text="put a timer on for 4 minutes"))
        assert reply.intent == "set_timer"
        away = await stub.Understand(pb.UnderstandRequest(text="who wrote war and peace"))
        assert away.out_of_scope
    finally:
        await mesh.stop()
