"""Cases and how answers are judged, and the JSON file a suite is kept in.

A case is one conversation: optional setup turns (which must complete, their answers unjudged),
then the turns whose answers are judged. A turn's answer is right when it matches every
expectation the turn sets: a regular expression, the first number in the answer, or a date
relative to the day the suite runs. A turn marked ``question`` must make the agent ask for more
(INPUT_REQUIRED); ``answer`` is then sent and the reply to it is judged.

Suite file (JSON)::

    {"format": "hivemesh.eval.cases/v1",
     "cases": [{"category": "calculator", "turns": [{"text": "what is 12 * (3 + 4)?", "number": 84}]},
               {"category": "memory", "setup": [{"text": "remember my dog is Rex"}],
                "turns": [{"text": "what is my dog called?", "pattern": "Rex", "session": "later"}]}]}

Turn fields other than ``text`` are optional (defaults below); unknown fields are refused, so a typo
never turns an expectation off silently.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

SUITE_FORMAT = "hivemesh.eval.cases/v1"
SUITES_DIR = Path(__file__).resolve().parent / "suites"
# The answer the built-in planner gives a request outside every intent.
OUT_OF_SCOPE = r"^Sorry, that's outside"

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


class SuiteError(ValueError):
    """A suite file that cannot be read; the message names the file and the case."""


@dataclass(frozen=True)
class Turn:
    """One request and how to judge the answer."""

    text: str
    # A regular expression the answer must match (searched, case-insensitive).
    pattern: str = ""
    # The first number in the answer must be this, within ``tolerance`` (relative).
    number: float | None = None
    tolerance: float = 0.005
    # The answer must name the date this many days after the day the suite runs (UTC), written as
    # the agent writes dates ("5 March 2026").
    date_from_today: int | None = None
    # Conversation the turn belongs to; turns of one case in different sessions share only the user.
    session: str = "main"
    # The agent must ask for more (INPUT_REQUIRED); ``answer`` is the follow-up sent.
    question: bool = False
    answer: str = ""
    # The user's time zone the request names (IANA, e.g. "Asia/Tokyo"); empty: none named.
    time_zone: str = ""


@dataclass(frozen=True)
class Case:
    category: str
    turns: tuple[Turn, ...]
    setup: tuple[Turn, ...] = field(default_factory=tuple)
    # Names the case in reports; the loader gives unnamed cases "<category>-<n>".
    id: str = ""


@dataclass(frozen=True)
class Suite:
    name: str
    cases: tuple[Case, ...]
    # SHA-256 of the canonical JSON of the cases: two reports compare like with like when equal.
    digest: str


def judge(turn: Turn, answer: str, *, today: dt.date | None = None) -> bool:
    """Whether ``answer`` meets every expectation of ``turn``; ``today`` defaults to the UTC date."""
    if turn.pattern and not re.search(turn.pattern, answer, flags=re.IGNORECASE):
        return False
    if turn.date_from_today is not None:
        day = (today or dt.datetime.now(dt.UTC).date()) + dt.timedelta(days=turn.date_from_today)
        if f"{day.day} {day.strftime('%B')} {day.year}".lower() not in answer.lower():
            return False
    if turn.number is not None:
        found = _NUMBER.search(answer)
        if found is None:
            return False
        value = float(found.group().replace(",", ""))
        if not math.isclose(value, turn.number, rel_tol=turn.tolerance, abs_tol=1e-9):
            return False
    return True


# ---- the suite file --------------------------------------------------------------------------------

_TURN_DEFAULTS = {f.name: f.default for f in fields(Turn) if f.name != "text"}


def _turn_to_json(turn: Turn) -> dict[str, Any]:
    data: dict[str, Any] = {"text": turn.text}
    data.update({k: getattr(turn, k) for k, v in _TURN_DEFAULTS.items() if getattr(turn, k) != v})
    return data


def _case_to_json(case: Case) -> dict[str, Any]:
    data: dict[str, Any] = {"category": case.category}
    if case.id:
        data["id"] = case.id
    if case.setup:
        data["setup"] = [_turn_to_json(t) for t in case.setup]
    data["turns"] = [_turn_to_json(t) for t in case.turns]
    return data


def dumps(cases: list[Case] | tuple[Case, ...]) -> str:
    """The suite file for ``cases``: one case per line, so a diff shows which cases changed."""
    lines = ",\n".join(f"    {json.dumps(_case_to_json(c), ensure_ascii=False)}" for c in cases)
    return f'{{\n  "format": "{SUITE_FORMAT}",\n  "cases": [\n{lines}\n  ]\n}}\n'


def _turn_from_json(data: Any, where: str) -> Turn:
    if not isinstance(data, dict) or not isinstance(data.get("text"), str) or not data["text"].strip():
        raise SuiteError(f"{where}: a turn is an object with a non-empty 'text'")
    unknown = set(data) - {"text", *_TURN_DEFAULTS}
    if unknown:
        raise SuiteError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    expected_types: dict[str, tuple[type, ...]] = {
        "pattern": (str,),
        "number": (int, float),
        "tolerance": (int, float),
        "date_from_today": (int,),
        "session": (str,),
        "question": (bool,),
        "answer": (str,),
        "time_zone": (str,),
    }
    for name, value in data.items():
        kinds = expected_types.get(name)
        if kinds is not None and (
            not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool))
        ):
            raise SuiteError(f"{where}.{name}: expected {' or '.join(k.__name__ for k in kinds)}")
    if data.get("pattern"):
        try:
            re.compile(data["pattern"])
        except re.error as exc:
            raise SuiteError(f"{where}.pattern: not a regular expression ({exc})") from exc
    if data.get("question") and not data.get("answer"):
        raise SuiteError(f"{where}: a question turn needs the 'answer' to send")
    return Turn(**data)


def _case_from_json(data: Any, where: str) -> Case:
    if not isinstance(data, dict):
        raise SuiteError(f"{where}: a case is an object")
    unknown = set(data) - {"category", "id", "setup", "turns"}
    if unknown:
        raise SuiteError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    category, turns, setup = data.get("category"), data.get("turns"), data.get("setup", [])
    if not isinstance(category, str) or not category:
        raise SuiteError(f"{where}: 'category' is a non-empty string")
    if not isinstance(turns, list) or not turns or not isinstance(setup, list):
        raise SuiteError(f"{where}: 'turns' is a non-empty list (and 'setup' a list)")
    return Case(
        category=category,
        turns=tuple(_turn_from_json(t, f"{where}.turns[{n}]") for n, t in enumerate(turns)),
        setup=tuple(_turn_from_json(t, f"{where}.setup[{n}]") for n, t in enumerate(setup)),
        id=str(data.get("id", "")),
    )


def parse(text: str, name: str) -> Suite:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SuiteError(f"{name}: not JSON ({exc})") from exc
    if not isinstance(document, dict) or document.get("format") != SUITE_FORMAT:
        raise SuiteError(f'{name}: expected an object with "format": "{SUITE_FORMAT}"')
    raw = document.get("cases")
    if not isinstance(raw, list) or not raw:
        raise SuiteError(f"{name}: 'cases' is a non-empty list")
    cases = [_case_from_json(c, f"{name}: cases[{n}]") for n, c in enumerate(raw)]
    numbered: list[Case] = []
    per_category: dict[str, int] = {}
    for case in cases:
        count = per_category[case.category] = per_category.get(case.category, 0) + 1
        numbered.append(case if case.id else replace(case, id=f"{case.category}-{count}"))
    ids = [c.id for c in numbered]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise SuiteError(f"{name}: case ids used twice: {', '.join(duplicated)}")
    canonical = json.dumps([_case_to_json(c) for c in numbered], sort_keys=True, ensure_ascii=False)
    return Suite(name, tuple(numbered), hashlib.sha256(canonical.encode()).hexdigest())


def load(source: str | Path) -> Suite:
    """A suite from a file, or a suite shipped with hivemesh by its name (``default``)."""
    path = Path(source)
    if not path.exists() and isinstance(source, str) and re.fullmatch(r"[a-z0-9_-]+", source):
        shipped = SUITES_DIR / f"{source}.json"
        if shipped.is_file():
            path = shipped
        else:
            names = ", ".join(sorted(p.stem for p in SUITES_DIR.glob("*.json")))
            raise SuiteError(f"no file {source!r} and no shipped suite of that name (shipped: {names})")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError(f"{source}: {exc.strerror or exc}") from exc
    return parse(text, path.stem if path.parent == SUITES_DIR else str(source))
