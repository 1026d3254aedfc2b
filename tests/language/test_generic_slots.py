"""The generic slots, read for an intent without a reader of its own (one a tool declares)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from hivemesh.language.slots import SlotKind, extract_slots
from hivemesh.language.slots.generic import MAX_NUMBERS, is_generic

NOW = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)


def read(text: str) -> list[tuple[str, float]]:
    slots = extract_slots(text, "tip", now=NOW)
    assert all(s.kind is SlotKind.NUMBER for s in slots)
    return [(s.name, float(s.value)) for s in slots]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "slots"),
    [
        ("what is a twenty percent tip on eighty five dollars", [("percent", 20), ("number", 85)]),
        ("tip 18% on $42.50", [("percent", 18), ("number", 42.5)]),
        ("a bill of 1,200 at 12.5 per cent", [("number", 1200), ("percent", 12.5)]),
        ("split 90 between 3 people", [("number", 90), ("number_2", 3)]),
        ("roll 3d6 for v2", []),  # digits inside words are not amounts
        ("how much should I tip", []),
    ],
)
def test_numbers_and_the_percentage_are_read(text: str, slots: list[tuple[str, float]]) -> None:
    assert read(text) == slots


def test_only_the_first_percentage_and_a_bounded_number_of_numbers_are_read() -> None:
    slots = read("10% 20% " + " ".join(str(n) for n in range(20)))
    assert slots[0] == ("percent", 10)
    assert [name for name, _ in slots[1:]] == ["number"] + [f"number_{n}" for n in range(2, MAX_NUMBERS + 1)]
    assert all(is_generic(name) for name, _ in slots)
    assert not is_generic("number_9")
    assert not is_generic("quantity")


def test_greetings_and_out_of_scope_requests_carry_no_slots() -> None:
    assert extract_slots("hi 2 you", "greeting", now=NOW) == []
    assert extract_slots("who won in 2022", "oos", now=NOW) == []


@pytest.mark.parametrize("unit", ["1", "1.", "1 ", "1%", "x1", "-1", "1 percent ", "$1 "])
def test_long_hostile_text_is_read_quickly(unit: str) -> None:
    text = unit * (16384 // len(unit))
    started = time.perf_counter()
    extract_slots(text, "tip", now=NOW)
    assert time.perf_counter() - started < 1.0
