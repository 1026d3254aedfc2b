"""Unit conversion requests: "convert 5 miles to km", "how many feet in a mile", "72°F in celsius".

Expects text whose numbers are already digits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hivemesh.language.slots.scan import last_line
from hivemesh.language.slots.units import normalize_unit, registry

_NUMBER = re.compile(r"(?<![\w.])(?P<num>-?\d+(?:\.\d+)?)(?![\d])")
_ARTICLE_UNIT = re.compile(r"\b(?:an?|one|per)\s+(?=[a-z°])", re.IGNORECASE)
# The words either side of an article, to tell a rate ("miles an hour", "km per hour") from a count.
_WORD_BEFORE = re.compile(r"(\S+)\s*$")
_WORD_AFTER = re.compile(r"\s*(\S+)")
# Searched from the start of the last line only (``last_line``): "to ... $" tried from every "to"
# of an earlier line would read that line to its end each time.
_TARGET = re.compile(r"\b(?:to|in|into|as|in\s+to|=|equals?)\s+(?P<rest>.+)$", re.IGNORECASE)
# A unit is at most three words (``_longest_unit``); a fourth allows for a word such as "US".
_HOW_MANY = re.compile(
    r"\bhow\s+(?:many|much)\s+(?P<unit>\S+(?:\s+\S+){0,3}?)\s+"
    r"(?:are|is|in|make|makes|equals?|=|does|do|for|there)\b",
    re.IGNORECASE,
)
# A request names its quantity among its first numbers; each number tried costs unit look-ups
# (fuzzy ones among them), so a text of thousands of numbers must not try them all.
_MAX_NUMBERS = 32
# No unit phrase is longer; a longer "word" is not looked up at all.
_MAX_UNIT_PHRASE = 40
_THREE_WORDS = re.compile(r"\s*(\S+)(?:\s+(\S+))?(?:\s+(\S+))?")
_OTHER_SCALE = {"degree_Celsius": "degree_Fahrenheit", "degree_Fahrenheit": "degree_Celsius"}


@dataclass(frozen=True)
class Conversion:
    value: float | None
    from_unit: str | None
    quantity_source: str
    to_unit: str | None
    to_source: str


def _longest_unit(text: str, at: int = 0) -> tuple[str, str] | None:
    """The longest run of up to three words from ``text[at:]`` that names a unit. Only those words
    are read, so trying every number of a long text stays linear."""
    first = _THREE_WORDS.match(text, at)
    words = [w for w in first.groups() if w is not None] if first else []
    for size in (3, 2, 1):
        if len(words) < size:
            continue
        phrase = " ".join(words[:size]).strip("?.,!;:")
        if len(phrase) > _MAX_UNIT_PHRASE:
            continue
        # Typos are corrected in single words only: "fahrenheit to" must not pass for a unit.
        unit = normalize_unit(phrase, fuzzy=size == 1)
        if unit is not None:
            return unit, phrase
    return None


def _spaced(text: str) -> str:
    # "5km" -> "5 km", "72°F" -> "72 °F"; "1h30m" never reaches here (durations are separate).
    return re.sub(r"(?<=\d)(?=[A-Za-z°])", " ", text)


def parse_conversion(text: str) -> Conversion:
    """The quantity to convert and the unit to convert it to, whichever of them the text names."""
    text = _spaced(text)
    # "how many feet in a mile": "a mile" is one mile; but in "kilometers per hour" or "miles an
    # hour" the article is part of the unit.
    text = _ARTICLE_UNIT.sub(lambda m: m.group(0) if _in_rate(text, m) else "1 ", text)
    value, from_unit, quantity_source = None, None, ""
    to_unit, to_source = None, ""
    how = _HOW_MANY.search(text)
    for tried, m in enumerate(_NUMBER.finditer(text)):
        if tried == _MAX_NUMBERS:
            break
        found = _longest_unit(text, m.end())
        if found is None:
            continue
        # "how many feet in 1 mile": the unit after the number is the source.
        unit, phrase = found
        value, from_unit = float(m.group("num")), unit
        quantity_source = f"{m.group('num')} {phrase}"
        after = text[m.end() :]
        after = after[after.find(phrase) + len(phrase) :] if phrase in after else ""
        target = _TARGET.search(after, last_line(after))
        if target:
            found_target = _longest_unit(target.group("rest"))
            if found_target:
                to_unit, to_source = found_target
        break
    if how is not None and to_unit is None:
        found_target = _longest_unit(how.group("unit"))
        if found_target:
            to_unit, to_source = found_target
    if value is None:
        # "celsius to fahrenheit" with no number: the units alone are still worth returning.
        for m in _TARGET.finditer(text, last_line(text)):
            found_target = _longest_unit(m.group("rest"))
            if found_target:
                to_unit, to_source = found_target
    if from_unit == "degree" and to_unit in _OTHER_SCALE:
        # "100 degrees to celsius" means degrees on the other common scale, not an angle.
        from_unit = _OTHER_SCALE[to_unit]
    # "ounces in two cups": next to a volume an ounce is a fluid ounce.
    if from_unit == "ounce" and _is_volume(to_unit):
        from_unit = "fluid_ounce"
    if to_unit == "ounce" and _is_volume(from_unit):
        to_unit = "fluid_ounce"
    return Conversion(value, from_unit, quantity_source, to_unit, to_source)


def _in_rate(text: str, article: re.Match[str]) -> bool:
    """Whether the article ``article`` matched joins the words around it into one unit."""
    # Only the stretch a unit phrase can span is read, so many articles keep the reading linear.
    before = _WORD_BEFORE.search(text, max(0, article.start() - _MAX_UNIT_PHRASE), article.start())
    after = _WORD_AFTER.match(text, article.end())
    if before is None or after is None:
        return False
    phrase = f"{before.group(1)} {article.group(0).strip()} {after.group(1)}".strip("?.,!;:")
    return len(phrase) <= _MAX_UNIT_PHRASE and normalize_unit(phrase, fuzzy=False) is not None


def _is_volume(unit: str | None) -> bool:
    if unit is None:
        return False
    return bool(registry().parse_units(unit).dimensionality == registry().parse_units("liter").dimensionality)
