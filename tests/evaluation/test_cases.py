from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from benchmarks.agent.cases import build
from hivemesh.evaluation import cases
from hivemesh.evaluation.cases import Turn, judge


def test_the_shipped_default_suite_is_the_agent_benchmarks_cases() -> None:
    shipped = cases.load("default")
    exported = cases.parse(cases.dumps(build()), "default")
    assert shipped.digest == exported.digest, (
        "refresh it: python -m benchmarks.agent --export services/hivemesh/evaluation/suites/default.json"
    )
    assert len(shipped.cases) > 200
    assert {"calculator", "follow_up", "memory", "out_of_scope", "lists"} <= {
        c.category for c in shipped.cases
    }


def test_a_suite_file_round_trips_and_names_its_cases(tmp_path: Path) -> None:
    suite = cases.load("default")
    path = tmp_path / "suite.json"
    path.write_text(cases.dumps(suite.cases), encoding="utf-8")
    again = cases.load(str(path))
    assert again.cases == suite.cases
    assert again.digest == suite.digest
    assert suite.cases[0].id == "calculator-1"
    assert len({c.id for c in suite.cases}) == len(suite.cases)


def test_a_date_relative_to_today_is_judged_on_the_day_the_suite_runs() -> None:
    turn = Turn("what's the date 10 days from today", date_from_today=10)
    today = dt.date(2026, 3, 25)
    assert judge(turn, "Saturday 4 April 2026", today=today)
    assert not judge(turn, "Friday 3 April 2026", today=today)


def test_numbers_and_patterns_are_both_required() -> None:
    turn = Turn("convert 5 miles to km", number=8.04672, pattern="kilometers")
    assert judge(turn, "8.047 kilometers")
    assert not judge(turn, "8.047 miles")
    assert not judge(turn, "9 kilometers")
    assert judge(Turn("what is 1,000 + 1", number=1001), "1,001")


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ({"category": "x", "turns": [{"text": "hi", "patern": "^Hello"}]}, "unknown field(s) patern"),
        ({"category": "x", "turns": [{"text": "hi", "pattern": "(unclosed"}]}, "not a regular expression"),
        ({"category": "x", "turns": [{"text": "convert 10 miles", "question": True}]}, "needs the 'answer'"),
        ({"category": "x", "turns": [{"text": "hi", "number": "84"}]}, "number: expected int or float"),
        ({"category": "x", "turns": []}, "'turns' is a non-empty list"),
        ({"turns": [{"text": "hi"}]}, "'category' is a non-empty string"),
    ],
)
def test_a_malformed_suite_is_refused_naming_the_case(case: object, message: str) -> None:
    text = json.dumps({"format": cases.SUITE_FORMAT, "cases": [case]})
    with pytest.raises(cases.SuiteError, match="cases\\[0\\]") as raised:
        cases.parse(text, "suite.json")
    assert message in str(raised.value)


def test_an_unknown_suite_name_lists_the_shipped_ones() -> None:
    with pytest.raises(cases.SuiteError, match="shipped: default"):
        cases.load("nightly")
