"""The built-in strategy: intents and slots to tool steps, questions and honest replies."""

from __future__ import annotations

import datetime as dt

from google.protobuf import json_format, struct_pb2
from google.protobuf.duration_pb2 import Duration

from hivemesh.language.v1 import language_service_pb2 as lang
from hivemesh.planner import strategy
from hivemesh.tool.builtins import discover
from hivemesh.tool.convert import binding
from hivemesh.tool.v1.tool_service_pb2 import ToolSpec

BUILT_IN = {item.spec.name: item.spec for item in discover()}


def spec(name: str, required: list[str]) -> ToolSpec:
    """A catalogue entry declaring what the built-in of ``name`` declares."""
    schema = struct_pb2.Struct()
    json_format.ParseDict({"type": "object", "required": required}, schema)
    intents = [binding(serves) for serves in BUILT_IN[name].intents]
    return ToolSpec(name=name, arguments_schema=schema, intents=intents)


TOOLS = {
    s.name: s
    for s in [
        spec("calculator", ["expression"]),
        spec("convert_units", ["value", "from_unit", "to_unit"]),
        spec("list_add", ["list", "items"]),
        spec("set_timer", ["seconds"]),
        spec("weekday", ["date"]),
        spec("roll_dice", []),
    ]
}


def understood(
    intent: str, text: str, *slots: lang.Slot, out_of_scope: bool = False
) -> lang.UnderstandResponse:
    return lang.UnderstandResponse(
        intent=intent, confidence=0.9, out_of_scope=out_of_scope, slots=list(slots), text=text
    )


def test_calculator_maps_the_expression() -> None:
    plan = strategy.plan(
        understood("calculator", "what is 12*(3+4)", lang.Slot(name="expression", text="12 * (3 + 4)")), TOOLS
    )
    assert [(s.number, s.tool, s.arguments) for s in plan.steps] == [
        (1, "calculator", {"expression": "12 * (3 + 4)"})
    ]


def test_typed_slots_become_typed_arguments() -> None:
    conversion = understood(
        "unit_conversion",
        "5 miles in km",
        lang.Slot(name="quantity", quantity=lang.Quantity(value=5, unit="mile")),
        lang.Slot(name="to_unit", unit="kilometer"),
    )
    timer = understood("set_timer", "timer 90s", lang.Slot(name="duration", duration=Duration(seconds=90)))
    weekday = understood(
        "weekday",
        "what day is 2026-03-01",
        lang.Slot(name="date", date=lang.CalendarDate(year=2026, month=3, day=1)),
    )
    assert strategy.plan(conversion, TOOLS).steps[0].arguments == {
        "value": 5,
        "from_unit": "mile",
        "to_unit": "kilometer",
    }
    assert strategy.plan(timer, TOOLS).steps[0].arguments == {"seconds": 90}
    assert strategy.plan(weekday, TOOLS).steps[0].arguments == {"date": dt.date(2026, 3, 1).isoformat()}


def test_a_missing_required_argument_becomes_a_question() -> None:
    plan = strategy.plan(
        understood(
            "unit_conversion",
            "convert 5 miles",
            lang.Slot(name="quantity", quantity=lang.Quantity(value=5, unit="mile")),
        ),
        TOOLS,
    )
    assert plan.steps == []
    question = plan.question
    assert question is not None
    assert question.missing == "to_unit"
    assert question.reply == "Which unit should I convert to?"


def test_compound_requests_become_independent_steps() -> None:
    whole = understood("unit_conversion", "convert 5 miles to km and add eggs to my shopping list")
    whole.parts.extend(
        [
            understood(
                "unit_conversion",
                "convert 5 miles to km",
                lang.Slot(name="quantity", quantity=lang.Quantity(value=5, unit="mile")),
                lang.Slot(name="to_unit", unit="kilometer"),
            ),
            understood(
                "list_add",
                "add eggs to my shopping list",
                lang.Slot(name="list_name", text="shopping"),
                lang.Slot(name="items", items=lang.StringList(values=["eggs"])),
            ),
        ]
    )
    steps = strategy.plan(whole, TOOLS).steps
    assert [(s.number, s.tool, s.depends_on) for s in steps] == [
        (1, "convert_units", ()),
        (2, "list_add", ()),
    ]
    assert steps[1].arguments == {"list": "shopping", "items": ["eggs"]}


def test_out_of_scope_is_an_honest_reply_without_tools() -> None:
    plan = strategy.plan(understood("oos", "who won the world cup", out_of_scope=True), TOOLS)
    assert plan.steps == []
    assert plan.parts[0].reply == strategy.OUT_OF_SCOPE_REPLY


def test_not_installed_differs_from_out_of_scope() -> None:
    weather = strategy.plan(understood("weather", "will it rain tomorrow"), TOOLS).parts[0]
    missing_tool = strategy.plan(understood("flip_coin", "flip a coin"), TOOLS).parts[0]
    assert "no tool for weather forecasts is installed" in weather.reply
    assert missing_tool.reply == "I understood that as 'flip_coin', but no tool for it is installed."
    assert strategy.OUT_OF_SCOPE_REPLY not in (weather.reply, missing_tool.reply)


def test_memory_intents_plan_memory_steps() -> None:
    remember = strategy.plan(
        understood(
            "remember",
            "remember that my sister's name is Ana",
            lang.Slot(name="fact", text="my sister's name is Ana"),
        ),
        TOOLS,
    )
    recall = strategy.plan(understood("recall", "what's my sister's name?"), TOOLS)
    assert remember.steps[0].tool == strategy.MEMORY_REMEMBER
    assert remember.steps[0].arguments == {"text": "my sister's name is Ana"}
    assert recall.steps[0].tool == strategy.MEMORY_RECALL
    assert recall.steps[0].arguments == {"query": "what's my sister's name?"}


def test_optional_arguments_may_be_left_out() -> None:
    assert strategy.plan(understood("roll_dice", "roll a die"), TOOLS).steps[0].arguments == {}
