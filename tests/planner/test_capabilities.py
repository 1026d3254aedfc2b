"""One capability, one declaration: the intents of the training data, the language service's slot
readers and the tools' declarations must agree, and the planner's tables follow the catalogue (the
live one of a real tool service, and nothing else)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TypedDict

import pytest
from google.protobuf import json_format

import hivemesh.language.slots
from hivemesh.language.slots import extract_slots, to_proto
from hivemesh.language.slots.generic import is_generic
from hivemesh.language.v1.language_service_pb2 import UnderstandResponse
from hivemesh.mesh import replies
from hivemesh.mesh.bulkhead import WaitingBulkhead
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.credentials import acting_as
from hivemesh.mesh.intents import AgentIntent, Intent
from hivemesh.planner import strategy
from hivemesh.planner.capabilities import Capabilities, CapabilityCache, phrase
from hivemesh.planner.clients import GrpcTools
from hivemesh.tool import convert
from hivemesh.tool.builtins import discover
from hivemesh.tool.decorator import Arg, tool
from hivemesh.tool.model import Fill, Serves, ToolOutput
from tests.support import RunningMesh, make_settings, mesh_minter, start_mesh

DATA = Path(hivemesh.language.slots.__file__).parent.parent / "data" / "intents.json"
NOW = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)
# Intents the agent answers itself, without a tool.
PLANNER_INTENTS = {str(intent) for intent in AgentIntent}


def examples() -> dict[str, list[str]]:
    data = json.loads(DATA.read_text(encoding="utf-8"))
    by_intent: dict[str, list[str]] = defaultdict(list)
    for text, intent in data["train"] + data["val"]:
        by_intent[intent].append(text)
    return by_intent


def declared() -> dict[str, tuple[str, set[str]]]:
    """intent -> (built-in tool, the slots its declaration reads), from the tools' own modules."""
    return {
        serves.intent: (item.spec.name, {fill.slot for fill in serves.arguments.values() if fill.slot})
        for item in discover()
        for serves in item.spec.intents
    }


def test_every_trained_intent_is_served_answered_or_known_without_a_tool() -> None:
    trained = set(examples())
    served = set(declared())
    assert not (served & PLANNER_INTENTS)
    assert not (served & set(replies.WITHOUT_TOOL))
    assert trained == served | PLANNER_INTENTS | set(replies.WITHOUT_TOOL), (
        "intents without a tool, planner reply or 'no tool' reply:",
        trained - served - PLANNER_INTENTS - set(replies.WITHOUT_TOOL),
        "declared but never trained:",
        (served | set(replies.WITHOUT_TOOL)) - trained,
    )


def test_each_tool_reads_exactly_the_slots_its_intents_reader_gives() -> None:
    by_intent = examples()
    for intent, (tool_name, slots) in declared().items():
        read = {s.name for text in by_intent[intent] for s in extract_slots(text, intent, now=NOW)}
        assert slots <= read, f"{tool_name} reads slots {slots - read} that no {intent} request gives"
        unused = {name for name in read - slots if not is_generic(name)}
        assert not unused, f"the {intent} reader gives slots {unused} that {tool_name} never reads"


def test_each_declared_argument_is_an_argument_of_its_tool_and_required_ones_can_be_asked() -> None:
    for item in discover():
        properties = set(item.spec.arguments_schema.get("properties", {}))
        required = set(item.spec.arguments_schema.get("required", []))
        for serves in item.spec.intents:
            assert set(serves.arguments) <= properties
            for name in required:
                fill = serves.arguments.get(name)
                assert fill is not None, f"{item.spec.name}: {name} is not declared"
                assert fill.question, f"{item.spec.name}: no question for {name}"


@pytest.fixture
async def tool_service(tmp_path: Path) -> AsyncIterator[RunningMesh]:
    mesh = await start_mesh(make_settings(tmp_path / "data"), services=["tool"])
    try:
        yield mesh
    finally:
        await mesh.stop()


async def test_the_tables_of_a_real_tool_service_are_its_tools_declarations(
    tool_service: RunningMesh,
) -> None:
    settings = tool_service.settings
    channels = ChannelFactory(settings, {"tool": tool_service.address("tool")})  # over gRPC
    try:
        tools = GrpcTools(channels, WaitingBulkhead("tool", 8), catalogue_max_age_s=0)
        with acting_as(mesh_minter(settings).mint("default", "ana")):
            listed = await tools.list_tools()
    finally:
        await channels.close()
    tables = Capabilities.of(listed)
    assert {intent: c.tool for intent, c in tables.served.items()} == {
        intent: tool for intent, (tool, _) in declared().items()
    }
    # Without the catalogue the planner knows no tool, whatever modules it could import.
    assert Capabilities.of([]).served == {}
    spell = next(spec for spec in listed if spec.name == "spell")
    [step] = strategy.plan(understood("how do you spell cat", "spell"), {"spell": spell}).steps
    assert (step.tool, step.arguments) == ("spell", {"word": "cat"})


class TipResult(TypedDict):
    tip: float
    total: float
    percent: float


@tool(
    result=TipResult,
    serves=Serves(
        "tip",
        {"bill": Fill("number", question="How much is the bill?"), "percent": Fill("percent")},
        reply="A {percent:g}% tip is {tip:.2f}, {total:.2f} in all.",
    ),
)
def tip(bill: Annotated[float, Arg(exclusive_minimum=0)], percent: float = 15) -> ToolOutput:
    """Work out a tip."""
    amount = round(bill * percent / 100, 2)
    return ToolOutput({"tip": amount, "total": round(bill + amount, 2), "percent": percent}, f"{amount}")


def understood(text: str, intent: str) -> UnderstandResponse:
    return UnderstandResponse(
        text=text, intent=intent, confidence=0.9, slots=to_proto(extract_slots(text, intent, now=NOW))
    )


def test_a_tool_in_the_catalogue_serves_its_intent_without_a_planner_change() -> None:
    specs = {item.spec.name: convert.spec(item.spec) for item in [*discover(), tip]}
    [step] = strategy.plan(understood("what is a twenty percent tip on 85 dollars", "tip"), specs).steps
    assert (step.tool, step.arguments) == ("tip", {"bill": 85, "percent": 20})
    assert phrase(step.reply, step.arguments, {"tip": 17.0, "total": 102.0, "percent": 20.0}) == (
        "A 20% tip is 17.00, 102.00 in all."
    )
    asked = strategy.plan(understood("how much should I tip", "tip"), specs)
    assert asked.question is not None
    assert (asked.question.missing, asked.question.reply) == ("bill", "How much is the bill?")
    without = strategy.plan(understood("what is a 20% tip on 85", "tip"), {})
    assert without.parts[0].reply == "I understood that as 'tip', but no tool for it is installed."


def test_a_catalogue_tool_takes_over_an_intent_known_without_a_tool() -> None:
    forecast = convert.spec(next(item.spec for item in discover() if item.spec.name == "flip_coin"))
    forecast.name = "forecast"
    del forecast.intents[:]
    forecast.intents.add(intent="weather")
    assert strategy.plan(understood("will it rain", "weather"), {}).parts[0].reply == replies.without_tool(
        "weather"
    )
    [step] = strategy.plan(understood("will it rain", "weather"), {"forecast": forecast}).steps
    assert step.tool == "forecast"


def test_a_spec_without_declarations_serves_no_intent_even_named_like_a_built_in() -> None:
    bare = convert.spec(next(item.spec for item in discover() if item.spec.name == "spell"))
    del bare.intents[:]
    planned = strategy.plan(understood("how do you spell cat", "spell"), {"spell": bare})
    assert planned.steps == []
    assert planned.parts[0].reply == replies.without_tool("spell")


def test_the_tables_are_built_once_per_catalogue() -> None:
    cache = CapabilityCache()
    specs = [convert.spec(item.spec) for item in discover()]
    first = cache.tables(specs)
    assert cache.tables(list(specs)) is first  # the same spec objects: the same tables
    changed = cache.tables([*specs, convert.spec(tip.spec)])
    assert changed is not first
    assert "tip" in changed.served
    assert "tip" not in first.served


def test_the_first_tool_by_name_serves_an_intent_two_declare() -> None:
    one, two = convert.spec(tip.spec), convert.spec(tip.spec)
    one.name, two.name = "a_tip", "b_tip"
    assert Capabilities.of([one, two]).served[Intent("tip")].tool == "a_tip"


def test_a_result_without_a_field_the_reply_names_falls_back_to_the_display() -> None:
    assert phrase("Tip {tip}", {}, {"total": 3}) is None
    assert phrase("", {}, {"tip": 3}) is None
    assert phrase("Tip {tip} of {bill}", {"bill": 20.0}, {"tip": 3.0}) == "Tip 3 of 20"


@pytest.mark.parametrize(
    ("serves", "problem"),
    [
        (Serves("Tip!"), "an intent is lower-case"),
        (Serves("tip", {"amount": Fill("number")}), "'amount' is not an argument"),
        (Serves("tip", {"bill": Fill()}), "names neither a slot nor a question"),
        (Serves("tip", {"bill": Fill("Number")}), "is not a slot name"),
        (Serves("tip", reply="{gratuity}"), "neither a result field nor an argument"),
        (Serves("tip", reply="{tip"), "malformed"),
        ([Serves("tip"), Serves("tip")], "declared twice"),
    ],
)
def test_a_bad_declaration_fails_when_the_tool_is_declared(
    serves: Serves | list[Serves], problem: str
) -> None:
    def bill_tip(bill: float) -> ToolOutput:
        """Work out a tip."""
        return ToolOutput({"tip": bill}, "")

    with pytest.raises(ValueError, match=problem):
        tool(result=TipResult, serves=serves)(bill_tip)


def test_the_declarations_travel_in_the_catalogue() -> None:
    spec = convert.spec(next(item.spec for item in discover() if item.spec.name == "convert_units"))
    as_json = json_format.MessageToDict(spec)
    [binding] = as_json["intents"]
    assert binding["intent"] == "unit_conversion"
    to_unit = next(a for a in binding["arguments"] if a["argument"] == "to_unit")
    assert to_unit == {
        "argument": "to_unit",
        "slot": "to_unit",
        "question": "Which unit should I convert to?",
        "answerJoiner": "to",
    }
