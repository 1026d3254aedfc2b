from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import jsonschema
import pytest

from hivemesh.mesh.errors import InvalidArgument
from hivemesh.tool.builtins import discover
from hivemesh.tool.decorator import FunctionTool
from hivemesh.tool.model import Owner, ToolDeps, ToolOutput
from tests.tool.fakes import InMemoryRecords, RecordingScheduler, context, deps

TOOLS = {t.spec.name: t for t in discover()}


async def run(
    name: str, arguments: Mapping[str, Any], tool_deps: ToolDeps | None = None, **kw: Any
) -> ToolOutput:
    item: FunctionTool = TOOLS[name]
    jsonschema.validate(dict(arguments), dict(item.spec.arguments_schema))
    output = await item.run(arguments, context(name, tool_deps or deps(), **kw))
    jsonschema.validate(dict(output.value), dict(item.spec.result_schema))
    return output


async def fails(
    name: str, arguments: Mapping[str, Any], tool_deps: ToolDeps | None = None, **kw: Any
) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        await run(name, arguments, tool_deps, **kw)
    return caught.value


def test_every_vocabulary_tool_is_installed() -> None:
    assert set(TOOLS) == {
        "calculator",
        "convert_units",
        "current_time",
        "weekday",
        "date_add",
        "days_between",
        "set_timer",
        "set_reminder",
        "list_add",
        "list_remove",
        "list_show",
        "list_clear",
        "roll_dice",
        "flip_coin",
        "spell",
    }
    for item in TOOLS.values():
        jsonschema.Draft202012Validator.check_schema(dict(item.spec.arguments_schema))
        assert item.spec.description


async def test_calculator_displays_integers_without_a_decimal_point() -> None:
    output = await run("calculator", {"expression": "12 * (3 + 4)"})
    assert output.display == "84"
    assert output.value["value"] == 84


@pytest.mark.parametrize(
    ("value", "source", "target", "shown"),
    [
        (5, "miles", "km", "8.047 kilometers"),
        (100, "F", "C", "37.78 degrees Celsius"),
        (0, "celsius", "fahrenheit", "32 degrees Fahrenheit"),
        (300, "kelvin", "degC", "26.85 degrees Celsius"),
        (1, "kg", "lbs", "2.205 pounds"),
        (2, "liters", "ml", "2000 milliliters"),
        (60, "mph", "kph", "96.56 kilometers per hour"),
        (1, "sq km", "m2", "1000000 square meters"),
        (1, "GiB", "MiB", "1024 mebibytes"),
        (1, "GB", "MB", "1000 megabytes"),
        (90, "minutes", "hours", "1.5 hours"),
        (12, "inches", "feet", "1 foot"),
        (1000, "square_foot", "square_meter", "92.9 square meters"),
    ],
)
async def test_convert_units(value: float, source: str, target: str, shown: str) -> None:
    output = await run("convert_units", {"value": value, "from_unit": source, "to_unit": target})
    assert output.display == shown


async def test_convert_units_refuses_unknown_and_incompatible_units() -> None:
    unknown = await fails("convert_units", {"value": 1, "from_unit": "furlongz", "to_unit": "m"})
    assert (unknown.reason, unknown.metadata["field"]) == ("UNKNOWN_UNIT", "arguments.from_unit")
    mismatch = await fails("convert_units", {"value": 1, "from_unit": "kg", "to_unit": "m"})
    assert (mismatch.reason, mismatch.metadata["field"]) == ("INCOMPATIBLE_UNITS", "arguments.to_unit")


@pytest.mark.parametrize(
    "unit", ["__import__('os')", "10**10**10", "m**99999999", "(m)", "1000 m", "m; import os", "m.__class__"]
)
async def test_convert_units_reads_only_what_has_the_shape_of_a_unit(unit: str) -> None:
    for field, arguments in (
        ("arguments.from_unit", {"value": 1, "from_unit": unit, "to_unit": "m"}),
        ("arguments.to_unit", {"value": 1, "from_unit": "m", "to_unit": unit}),
    ):
        refused = await fails("convert_units", arguments)
        assert (refused.reason, refused.metadata["field"]) == ("UNKNOWN_UNIT", field)


@pytest.mark.parametrize(
    ("source", "target", "shown"),
    [("m/s^2", "km/h**2", "12960 kilometers per square hour"), ("kg * m / s**2", "newton", "1 newton")],
)
async def test_convert_units_reads_products_quotients_and_powers(
    source: str, target: str, shown: str
) -> None:
    output = await run("convert_units", {"value": 1, "from_unit": source, "to_unit": target})
    assert output.display == shown


async def test_convert_units_refuses_a_result_a_double_cannot_hold() -> None:
    refused = await fails("convert_units", {"value": 1e308, "from_unit": "km", "to_unit": "nm"})
    assert (refused.reason, refused.metadata["field"]) == ("OVERFLOW", "arguments.value")


@pytest.mark.parametrize(
    ("location", "zone", "shown"),
    [
        ("UTC", "UTC", "14:05 on Wednesday 25 November 2026 (UTC)"),
        ("Europe/Paris", "Europe/Paris", "15:05 on Wednesday 25 November 2026 (Europe/Paris)"),
        ("tokyo", "Asia/Tokyo", "23:05 on Wednesday 25 November 2026 (Asia/Tokyo)"),
        ("New York", "America/New_York", "09:05 on Wednesday 25 November 2026 (America/New_York)"),
        ("San Francisco", "America/Los_Angeles", "06:05 on Wednesday 25 November 2026 (America/Los_Angeles)"),
    ],
)
async def test_current_time(location: str, zone: str, shown: str) -> None:
    output = await run("current_time", {"location": location})
    assert output.value["time_zone"] == zone
    assert output.display == shown


async def test_current_time_defaults_to_utc_and_refuses_unknown_places() -> None:
    assert (await run("current_time", {})).value["utc_offset"] == "+00:00"
    error = await fails("current_time", {"location": "Atlantis"})
    assert (error.reason, error.metadata["field"]) == ("UNKNOWN_LOCATION", "arguments.location")


async def test_weekday_and_leap_days() -> None:
    assert (await run("weekday", {"date": "2026-11-25"})).display == "Wednesday"
    assert (await run("weekday", {"date": "2024-02-29"})).display == "Thursday"
    error = await fails("weekday", {"date": "2026-02-29"})
    assert (error.reason, error.metadata["field"]) == ("INVALID_DATE", "arguments.date")


async def test_date_add() -> None:
    after = await run("date_add", {"date": "2026-03-01", "days": 30})
    assert after.value == {"date": "2026-03-31", "weekday": "Tuesday"}
    assert after.display == "Tuesday 31 March 2026"
    assert (await run("date_add", {"date": "2026-03-01", "days": -1})).value["date"] == "2026-02-28"
    error = await fails("date_add", {"date": "9999-12-01", "days": 100})
    assert error.reason == "DATE_OUT_OF_RANGE"


async def test_days_between() -> None:
    assert (await run("days_between", {"start": "2026-01-01", "end": "2026-12-25"})).display == "358 days"
    assert (await run("days_between", {"start": "2026-01-02", "end": "2026-01-01"})).display == "-1 day"
    assert (await run("days_between", {"start": "2024-02-28", "end": "2024-03-01"})).value["days"] == 2


async def test_dice_are_reproducible_with_a_seeded_source() -> None:
    first = await run("roll_dice", {"sides": 20, "count": 3})
    again = await run("roll_dice", {"sides": 20, "count": 3})
    assert first.value == again.value
    assert all(1 <= r <= 20 for r in first.value["rolls"])
    assert first.display == f"{' + '.join(map(str, first.value['rolls']))} = {first.value['total']}"
    single = await run("roll_dice", {})
    assert single.value["sides"] == 6
    assert single.display == str(single.value["total"])


async def test_coin_lands_on_both_sides() -> None:
    seen: set[str] = set()
    tool_deps = deps()
    for _ in range(30):
        seen.add((await run("flip_coin", {}, tool_deps)).value["side"])
    assert seen == {"heads", "tails"}


async def test_spell() -> None:
    assert (await run("spell", {"word": "cat"})).display == "C-A-T"
    phrase = await run("spell", {"word": "  New   York "})
    assert phrase.display == "N-E-W Y-O-R-K"
    assert phrase.value["letters"] == list("NewYork")


async def test_set_timer_stores_and_schedules_a_reminder() -> None:
    records, scheduler = InMemoryRecords(), RecordingScheduler()
    output = await run("set_timer", {"seconds": 300, "label": "tea"}, deps(records, scheduler), key="t-1:2")
    assert output.display == "Timer set for 5 minutes: tea"
    (reminder,) = scheduler.scheduled
    assert (reminder.kind, reminder.text, reminder.task_id) == ("timer", "tea", "t-1")
    assert output.value["due"] == "2026-11-25T14:10:00Z"
    (((_, kind, key), stored),) = records.records.items()
    assert (kind, key) == ("reminder", reminder.reminder_id)
    assert stored.value["kind"] == "timer"
    again = await run("set_timer", {"seconds": 300, "label": "tea"}, deps(), key="t-1:2")
    assert again.value["reminder_id"] == output.value["reminder_id"]  # same key, same reminder


async def test_set_timer_durations_read_naturally() -> None:
    assert (await run("set_timer", {"seconds": 5400})).display == "Timer set for 1 hour 30 minutes"
    assert (await run("set_timer", {"seconds": 1.5})).display == "Timer set for 1.5 seconds"


async def test_set_reminder() -> None:
    scheduler = RecordingScheduler()
    output = await run(
        "set_reminder", {"text": "call mom", "due": "2026-11-26T10:00:00+01:00"}, deps(None, scheduler)
    )
    assert output.display == "Reminder set for 2026-11-26 09:00 UTC: call mom"
    assert scheduler.scheduled[0].kind == "reminder"
    past = await fails("set_reminder", {"text": "x", "due": "2020-01-01T00:00:00Z"})
    assert past.reason == "REMINDER_IN_PAST"
    naive = await fails("set_reminder", {"text": "x", "due": "2026-11-26T09:00:00"})
    assert (naive.reason, naive.metadata["field"]) == ("INVALID_DATE_TIME", "arguments.due")


async def test_stored_data_needs_a_user() -> None:
    error = await fails("list_show", {"list": "todo"}, owner=Owner("acme", "", ""))
    assert (error.reason, error.metadata["field"]) == ("SCOPE_REQUIRED", "scope.user_id")


async def test_lists_add_remove_show_clear() -> None:
    tool_deps = deps()
    added = await run("list_add", {"list": "Shopping", "items": ["milk", "eggs"]}, tool_deps)
    assert added.display == "Added milk, eggs to your shopping list: milk, eggs"
    again = await run("list_add", {"list": "shopping ", "items": ["Milk", "bread"]}, tool_deps)
    assert again.value["items"] == ["milk", "eggs", "bread"]
    assert again.value["unchanged"] == ["Milk"]
    removed = await run("list_remove", {"list": "shopping", "items": ["EGGS", "caviar"]}, tool_deps)
    assert removed.value["items"] == ["milk", "bread"]
    assert removed.value["unchanged"] == ["caviar"]
    assert (
        await run("list_show", {"list": "shopping"}, tool_deps)
    ).display == "Your shopping list: milk, bread"
    cleared = await run("list_clear", {"list": "shopping"}, tool_deps)
    assert cleared.display == "Cleared your shopping list (2 items)"
    assert (await run("list_show", {"list": "shopping"}, tool_deps)).display == "Your shopping list is empty"


async def test_concurrent_adds_to_one_list_never_lose_an_item() -> None:
    tool_deps = deps()
    await asyncio.gather(
        *(run("list_add", {"list": "todo", "items": [f"task {i}"]}, tool_deps) for i in range(10))
    )
    shown = await run("list_show", {"list": "todo"}, tool_deps)
    assert sorted(shown.value["items"]) == sorted(f"task {i}" for i in range(10))


@pytest.mark.parametrize(
    ("value", "source", "target", "shown"),
    [
        (8, "fl oz", "ml", "236.6 milliliters"),
        (70, "kilos", "lbs", "154.3 pounds"),
        (20, "celcius", "fahrenheit", "68 degrees Fahrenheit"),
        (60, "kilometer_per_hour", "mile_per_hour", "37.28 miles per hour"),
        (10, "square_foot", "sq m", "0.929 square meters"),
        (1, "nmi", "km", "1.852 kilometers"),
    ],
)
async def test_convert_units_reads_the_aliases_the_language_service_reads(
    value: float, source: str, target: str, shown: str
) -> None:
    output = await run("convert_units", {"value": value, "from_unit": source, "to_unit": target})
    assert output.display == shown


@pytest.mark.parametrize(
    ("location", "zone"),
    [("Hanoi", "Asia/Bangkok"), ("Cape Town", "Africa/Johannesburg"), ("Paris, France", "Europe/Paris")],
)
async def test_current_time_finds_cities_missing_from_the_zone_names(location: str, zone: str) -> None:
    output = await run("current_time", {"location": location})
    assert output.value["time_zone"] == zone
