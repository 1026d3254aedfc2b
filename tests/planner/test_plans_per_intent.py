"""Every intent family with a tool: real slot extraction -> built-in plan -> arguments that the
real tool's JSON Schema accepts. No servers: this is the planner's mapping, end to end on data."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from google.protobuf import json_format

from hivemesh.language.slots import extract_slots, to_proto
from hivemesh.language.v1.language_service_pb2 import UnderstandResponse
from hivemesh.planner import strategy
from hivemesh.planner.capabilities import Capabilities
from hivemesh.tool import convert
from hivemesh.tool.builtins import discover

NOW = datetime(2026, 11, 25, 14, 30, tzinfo=ZoneInfo("UTC"))
SPECS = {item.spec.name: convert.spec(item.spec) for item in discover()}


@pytest.mark.parametrize(
    ("text", "intent", "tool", "expected"),
    [
        ("what is 12 * (3 + 4)", "calculator", "calculator", {"expression": "12 * (3 + 4)"}),
        ("convert 5 miles to km", "unit_conversion", "convert_units", {"value": 5}),
        ("what time is it in Tokyo", "current_time", "current_time", {"location": "Tokyo"}),
        ("what day of the week is 2026-03-01", "weekday", "weekday", {"date": "2026-03-01"}),
        (
            "what is 30 days after 2026-03-01",
            "date_arithmetic",
            "date_add",
            {"date": "2026-03-01", "days": 30},
        ),
        (
            "how many days between 2026-01-01 and 2026-12-25",
            "days_between",
            "days_between",
            {"start": "2026-01-01", "end": "2026-12-25"},
        ),
        ("set a timer for 5 minutes", "set_timer", "set_timer", {"seconds": 300}),
        ("remind me to call mom tomorrow at 9am", "set_reminder", "set_reminder", {"text": "call mom"}),
        ("add eggs to my shopping list", "list_add", "list_add", {"list": "shopping", "items": ["eggs"]}),
        (
            "remove eggs from my shopping list",
            "list_remove",
            "list_remove",
            {"list": "shopping", "items": ["eggs"]},
        ),
        ("what's on my shopping list", "list_show", "list_show", {"list": "shopping"}),
        ("clear my todo list", "list_clear", "list_clear", {"list": "todo"}),
        ("roll 3d6", "roll_dice", "roll_dice", {"sides": 6, "count": 3}),
        ("flip a coin", "flip_coin", "flip_coin", {}),
        ("how do you spell necessary", "spell", "spell", {"word": "necessary"}),
    ],
)
def test_each_intent_plans_a_valid_call_of_its_tool(
    text: str, intent: str, tool: str, expected: dict[str, Any]
) -> None:
    understood = UnderstandResponse(
        text=text, intent=intent, confidence=0.9, slots=to_proto(extract_slots(text, intent, now=NOW))
    )
    plan = strategy.plan(understood, SPECS)
    assert plan.question is None, plan.parts[0].reply
    [step] = plan.steps
    assert step.tool == tool
    assert expected.items() <= step.arguments.items()
    schema = json_format.MessageToDict(SPECS[tool].arguments_schema)
    jsonschema.validate(step.arguments, schema)


def test_every_intent_with_a_tool_maps_to_an_installed_built_in() -> None:
    tables = Capabilities.of(SPECS.values())
    assert {capability.tool for capability in tables.served.values()} <= set(SPECS)
    assert {str(intent) for intent in tables.served} == {
        serves.intent for item in discover() for serves in item.spec.intents
    }
