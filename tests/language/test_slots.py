from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hivemesh.language.slots import Quantity, SlotKind, SlotValue, extract_slots, split_compound, to_proto
from hivemesh.language.slots.numbers import normalize_numbers, parse_number
from hivemesh.language.slots.units import normalize_unit

# A Wednesday afternoon in Paris.
NOW = datetime(2026, 11, 25, 14, 30, tzinfo=ZoneInfo("Europe/Paris"))


def slots(text: str, intent: str) -> dict[str, SlotValue]:
    return {s.name: s for s in extract_slots(text, intent, now=NOW)}


def value(text: str, intent: str, name: str) -> object:
    found = slots(text, intent)
    assert name in found, f"{name} missing from {found}"
    return found[name].value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("twelve", 12.0),
        ("one hundred and five", 105.0),
        ("3.5", 3.5),
        ("1,200", 1200.0),
        ("a dozen", 12.0),
        ("two and a half", 2.5),
        ("negative four", -4.0),
        ("-7", -7.0),
        ("twenty-one", 21.0),
        ("three point one four", 3.14),
        ("two thousand and five", 2005.0),
        ("one million two hundred thousand", 1_200_000.0),
        ("eggs", None),
    ],
)
def test_numbers_in_words_and_digits(text: str, expected: float | None) -> None:
    assert parse_number(text) == expected


def test_number_words_leave_other_words_alone() -> None:
    assert normalize_numbers("add two and three") == "add 2 and 3"
    assert normalize_numbers("someone called") == "someone called"
    assert normalize_numbers("5 minus 3") == "5 minus 3"
    assert normalize_numbers("minus 40 degrees") == "-40 degrees"


@pytest.mark.parametrize(
    ("text", "expression"),
    [
        ("what is 12 times 3 plus 4", "12 * 3 + 4"),
        ("what is twelve times three plus four", "12 * 3 + 4"),
        ("what is 12 * (3 + 4)?", "12 * (3 + 4)"),
        ("what's 15% of 80", "15% of 80"),
        ("whats 15 percent of 80", "15% of 80"),
        ("30% off 279", "30% off 279"),
        ("square root of 144", "sqrt(144)"),
        ("5 squared", "5 ^ 2"),
        ("2 to the power of 10", "2 ^ 10"),
        ("7 divided by 2", "7 / 2"),
        ("10 factorial", "factorial(10)"),
        ("what is 5!", "5!"),
        ("round 3.7", "round(3.7)"),
        ("absolute value of -4", "abs(-4)"),
        ("calculate 3 x 4", "3 * 4"),
        ("sum of 3, 4 and 5", "(3 + 4 + 5)"),
        ("subtract 3 from 10", "10 - 3"),
        ("how much is 1,200 divided by 4", "1200 / 4"),
        ("what is negative 5 times 3", "-5 * 3"),
        ("square root of 16 plus 9", "sqrt(16) + 9"),
        ("what is 10 mod 3", "10 % 3"),
        ("a 20% tip on $85", "20% of 85"),
        ("a jacket costs 250 dollars and is 20% off, what do i pay", "20% off 250"),
        ("shoes at 120 with a 15 percent discount", "15% off 120"),
        ("what is 30% off of 50", "30% off 50"),
    ],
)
def test_calculator_expression(text: str, expression: str) -> None:
    assert value(text, "calculator", "expression") == expression


def test_calculator_without_arithmetic_has_no_slot() -> None:
    assert extract_slots("hello there", "calculator", now=NOW) == []


@pytest.mark.parametrize(
    ("text", "unit"),
    [
        ("kilometres", "kilometer"),
        ("kilometers", "kilometer"),
        ("km", "kilometer"),
        ("klometers", "kilometer"),
        ("miles", "mile"),
        ("mi", "mile"),
        ("lbs", "pound"),
        ("pounds", "pound"),
        ("°F", "degree_Fahrenheit"),
        ("fahrenheit", "degree_Fahrenheit"),
        ("celcius", "degree_Celsius"),
        ("degrees celsius", "degree_Celsius"),
        ("mph", "mile_per_hour"),
        ("km/h", "kilometer_per_hour"),
        ("gigabytes", "gigabyte"),
        ("GB", "gigabyte"),
        ("square feet", "square_foot"),
        ("sq ft", "square_foot"),
        ("liters", "liter"),
        ("litres", "liter"),
        ("cups", "cup"),
        ("ounces", "ounce"),
        ("at", None),
        ("the", None),
    ],
)
def test_unit_names(text: str, unit: str | None) -> None:
    assert normalize_unit(text) == unit


@pytest.mark.parametrize(
    ("text", "quantity", "to_unit"),
    [
        ("convert 5 miles to km", Quantity(5, "mile"), "kilometer"),
        ("convert 5 klometers to miles", Quantity(5, "kilometer"), "mile"),
        ("how many feet in a mile", Quantity(1, "mile"), "foot"),
        ("what is 72°F in celsius", Quantity(72, "degree_Fahrenheit"), "degree_Celsius"),
        ("-40 c to f", Quantity(-40, "degree_Celsius"), "degree_Fahrenheit"),
        ("convert twelve kilometres into miles please", Quantity(12, "kilometer"), "mile"),
        ("1200 sq ft in square meters", Quantity(1200, "square_foot"), "square_meter"),
        ("convert 60 mph to km/h", Quantity(60, "mile_per_hour"), "kilometer_per_hour"),
        ("how many ounces in two cups", Quantity(2, "cup"), "fluid_ounce"),
        ("how much is 20 kg in pounds?", Quantity(20, "kilogram"), "pound"),
        # A rate written out is one unit: "per" and "an" do not count one of the next unit.
        ("change 45 mph to kilometers per hour", Quantity(45, "mile_per_hour"), "kilometer_per_hour"),
        ("convert 60 mph to km per hour", Quantity(60, "mile_per_hour"), "kilometer_per_hour"),
        ("50 miles an hour in kilometers an hour", Quantity(50, "mile_per_hour"), "kilometer_per_hour"),
        ("I weigh 80 kilos, what is that in pounds", Quantity(80, "kilogram"), "pound"),
    ],
)
def test_unit_conversion(text: str, quantity: Quantity, to_unit: str) -> None:
    found = slots(text, "unit_conversion")
    assert found["quantity"].value == quantity
    assert found["to_unit"].kind is SlotKind.UNIT
    assert found["to_unit"].value == to_unit


@pytest.mark.parametrize(
    ("text", "location"),
    [
        ("what time is it in Tokyo", "Tokyo"),
        ("time in new york", "New York"),
        ("current time in europe/paris", "Europe/Paris"),
        ("what's the time in London right now?", "London"),
    ],
)
def test_current_time_location(text: str, location: str) -> None:
    found = slots(text, "current_time")
    assert found["location"].kind is SlotKind.NAME
    assert found["location"].value == location


def test_current_time_without_place_has_no_location() -> None:
    assert slots("what time is it", "current_time") == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("what day of the week is 2026-03-01", date(2026, 3, 1)),
        ("what day is March 1, 2026", date(2026, 3, 1)),
        ("what day is 1 March 2026", date(2026, 3, 1)),
        ("what day is 3/1/2026", date(2026, 3, 1)),
        ("what day is 25/12/2026", date(2026, 12, 25)),
        ("what day is march third", date(2027, 3, 3)),
        ("what day is the twenty-first of june 2027", date(2027, 6, 21)),
        ("what day is today", date(2026, 11, 25)),
        ("what day is it tomorrow", date(2026, 11, 26)),
        ("what day was yesterday", date(2026, 11, 24)),
        ("what date is next Friday", date(2026, 11, 27)),
        ("what day will it be in 3 weeks", date(2026, 12, 16)),
        ("what day is christmas", date(2026, 12, 25)),
        ("what day was july 4th 1776", date(1776, 7, 4)),
        ("what day is it", date(2026, 11, 25)),
    ],
)
def test_weekday_dates(text: str, expected: date) -> None:
    assert value(text, "weekday", "date") == expected


@pytest.mark.parametrize(
    ("text", "base", "days"),
    [
        ("30 days after 2026-03-01", date(2026, 3, 1), 30),
        ("2 weeks before Christmas 2026", date(2026, 12, 25), -14),
        ("what's the date 10 days from today", date(2026, 11, 25), 10),
        ("what was the date 100 days ago", date(2026, 11, 25), -100),
        ("what date is three weeks from tomorrow", date(2026, 11, 26), 21),
        ("add 1 month to jan 31 2027", date(2027, 1, 31), 28),
        ("subtract a fortnight from march 1st 2027", date(2027, 3, 1), -14),
    ],
)
def test_date_arithmetic(text: str, base: date, days: int) -> None:
    found = slots(text, "date_arithmetic")
    assert found["date"].value == base
    assert found["offset_days"].value == float(days)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("how many days between March 1 and April 15 2026", date(2026, 3, 1), date(2026, 4, 15)),
        ("days until Christmas", date(2026, 11, 25), date(2026, 12, 25)),
        ("how many days since january 1st", date(2026, 1, 1), date(2026, 11, 25)),
        ("days from december 20 to january 5 2027", date(2026, 12, 20), date(2027, 1, 5)),
    ],
)
def test_days_between(text: str, start: date, end: date) -> None:
    found = slots(text, "days_between")
    assert (found["start_date"].value, found["end_date"].value) == (start, end)


@pytest.mark.parametrize(
    ("text", "seconds", "label"),
    [
        ("set a timer for 5 minutes", 300, None),
        ("set a timer for an hour and a half", 5400, None),
        ("timer 90 seconds called tea", 90, "tea"),
        ("1h30m timer", 5400, None),
        ("set a timer for 10 minutes for the pasta", 600, "pasta"),
        ("set a pasta timer for half an hour", 1800, "pasta"),
        ("start a ten minute timer", 600, None),
        ("timer for 1 hour and 15 minutes", 4500, None),
    ],
)
def test_timer(text: str, seconds: int, label: str | None) -> None:
    found = slots(text, "set_timer")
    assert found["duration"].value == timedelta(seconds=seconds)
    assert (found["label"].value if "label" in found else None) == label


@pytest.mark.parametrize(
    ("text", "reminder", "due"),
    [
        ("remind me to call mom tomorrow at 9am", "call mom", datetime(2026, 11, 26, 9, 0)),
        ("remind me in 20 minutes to check the oven", "check the oven", datetime(2026, 11, 25, 14, 50)),
        ("remind me at 5pm to pick up the kids", "pick up the kids", datetime(2026, 11, 25, 17, 0)),
        ("remind me on Friday to pay rent", "pay rent", datetime(2026, 11, 27, 9, 0)),
        ("remind me to take out the trash tonight", "take out the trash", datetime(2026, 11, 25, 20, 0)),
        ("remind me at 8am to water the plants", "water the plants", datetime(2026, 11, 26, 8, 0)),
        (
            "set a reminder for the dentist on december 3rd at 2:30 pm",
            "the dentist",
            datetime(2026, 12, 3, 14, 30),
        ),
    ],
)
def test_reminder(text: str, reminder: str, due: datetime) -> None:
    found = slots(text, "set_reminder")
    assert found["reminder_text"].value == reminder
    assert found["due"].value == due.replace(tzinfo=NOW.tzinfo)


@pytest.mark.parametrize(
    ("text", "intent", "list_name", "items"),
    [
        ("add eggs, milk and bread to my shopping list", "list_add", "shopping", ("eggs", "milk", "bread")),
        ("put buy stamps on my todo list", "list_add", "todo", ("buy stamps",)),
        ("add milk to my grocery list please", "list_add", "shopping", ("milk",)),
        ("add sunscreen to my packing list", "list_add", "packing", ("sunscreen",)),
        ("remove milk from the shopping list", "list_remove", "shopping", ("milk",)),
        ("cross call bob off my to-do list", "list_remove", "todo", ("call bob",)),
        ("what's on my shopping list", "list_show", "shopping", None),
        ("clear my todo list", "list_clear", "todo", None),
        ("add to my shopping list", "list_add", "shopping", None),
        ("remove from my todo list", "list_remove", "todo", None),
        ("shopping list: add batteries", "list_add", "shopping", ("batteries",)),
        ("grocery list - add milk and eggs", "list_add", "shopping", ("milk", "eggs")),
        ("my todo list, remove call bob", "list_remove", "todo", ("call bob",)),
    ],
)
def test_lists(text: str, intent: str, list_name: str, items: tuple[str, ...] | None) -> None:
    found = slots(text, intent)
    assert found["list_name"].value == list_name
    assert (found["items"].value if "items" in found else None) == items


@pytest.mark.parametrize(
    ("text", "sides", "count"),
    [
        ("roll two dice", None, 2),
        ("roll a d20", 20, 1),
        ("roll 3d6", 6, 3),
        ("roll a twenty-sided die", 20, 1),
        ("roll a pair of dice", None, 2),
    ],
)
def test_dice(text: str, sides: int | None, count: int | None) -> None:
    found = slots(text, "roll_dice")
    assert (found["sides"].value if "sides" in found else None) == sides
    assert (found["count"].value if "count" in found else None) == count


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("how do you spell necessary", "necessary"),
        ("spell 'rhythm'", "rhythm"),
        ("how is accommodate spelled?", "accommodate"),
        ("can you spell the word onomatopoeia for me", "onomatopoeia"),
    ],
)
def test_spell(text: str, word: str) -> None:
    assert value(text, "spell", "word") == word


@pytest.mark.parametrize(
    ("text", "fact"),
    [
        ("remember that my sister's name is Ana", "my sister's name is Ana"),
        ("please remember my wifi password is hunter2", "my wifi password is hunter2"),
        ("my car is parked on level 3, remember that", "my car is parked on level 3"),
        ("remember that Tom and Ana are my cousins", "Tom and Ana are my cousins"),
    ],
)
def test_remember(text: str, fact: str) -> None:
    assert value(text, "remember", "fact") == fact


def test_recall_query_keeps_the_question() -> None:
    assert value("what is my sister's name?", "recall", "query") == "what is my sister's name"
    assert value("do you remember where I parked", "recall", "query") == "where I parked"


def test_intents_without_slots() -> None:
    assert extract_slots("flip a coin", "flip_coin", now=NOW) == []
    assert extract_slots("hello", "greeting", now=NOW) == []
    assert extract_slots("who won the world cup", "oos", now=NOW) == []


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        extract_slots("remind me tomorrow", "set_reminder", now=datetime(2026, 11, 25))


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        (
            "convert 5 miles to km and add eggs to my shopping list",
            ["convert 5 miles to km", "add eggs to my shopping list"],
        ),
        ("what is 12 * (3 + 4)?", ["what is 12 * (3 + 4)?"]),
        ("add eggs and milk to my shopping list", ["add eggs and milk to my shopping list"]),
        ("remember that Tom and Ana are my cousins", ["remember that Tom and Ana are my cousins"]),
        ("roll a die and flip a coin", ["roll a die", "flip a coin"]),
        ("how many days between march 1 and april 15", ["how many days between march 1 and april 15"]),
        ("What time is it in Tokyo? Also roll 2 dice.", ["What time is it in Tokyo?", "roll 2 dice."]),
        ("flip a coin and then spell necessary", ["flip a coin", "spell necessary"]),
        ("hi, what time is it", ["hi, what time is it"]),
        # The word to spell is one word: what follows it is a request of its own.
        ("spell dog and roll a die", ["spell dog", "roll a die"]),
        ("how do you spell rock and roll", ["how do you spell rock and roll"]),
        # A clause about the one before it stays with it.
        ("I weigh 80 kilos, what is that in pounds", ["I weigh 80 kilos, what is that in pounds"]),
        (
            "a jacket costs 250 dollars and is 20% off, what do i pay",
            ["a jacket costs 250 dollars and is 20% off, what do i pay"],
        ),
        (
            "convert 5 km to miles, what time is it in Lima",
            ["convert 5 km to miles", "what time is it in Lima"],
        ),
    ],
)
def test_split_compound(text: str, parts: list[str]) -> None:
    assert split_compound(text) == parts


def test_slot_value_checks_kind() -> None:
    with pytest.raises(TypeError):
        SlotValue("date", "", SlotKind.DATE, NOW)
    with pytest.raises(TypeError):
        SlotValue("n", "", SlotKind.NUMBER, "3")


def test_to_proto_fills_each_oneof_case() -> None:
    values = [
        SlotValue.number("count", "two", 2),
        SlotValue.quantity("quantity", "5 miles", 5, "mile"),
        SlotValue.unit("to_unit", "km", "kilometer"),
        SlotValue.date("date", "March 1", date(2026, 3, 1)),
        SlotValue.date_time("due", "tomorrow at 9am", datetime(2026, 11, 26, 9, tzinfo=NOW.tzinfo)),
        SlotValue.duration("duration", "5 minutes", timedelta(minutes=5)),
        SlotValue.items("items", "eggs and milk", ["eggs", "milk"]),
        SlotValue.name_value("location", "Tokyo", "Tokyo"),
        SlotValue.text("word", "rhythm", "rhythm"),
    ]
    messages = to_proto(values)
    assert [m.WhichOneof("value") for m in messages] == [v.kind.value for v in values]
    assert messages[0].number == 2.0
    assert (messages[1].quantity.value, messages[1].quantity.unit) == (5.0, "mile")
    assert (messages[3].date.year, messages[3].date.month, messages[3].date.day) == (2026, 3, 1)
    # 09:00 in Paris in November is 08:00 UTC.
    assert messages[4].date_time.ToDatetime() == datetime(2026, 11, 26, 8, 0)
    assert messages[5].duration.ToTimedelta() == timedelta(minutes=5)
    assert list(messages[6].items.values) == ["eggs", "milk"]
    assert messages[1].source_text == "5 miles"
