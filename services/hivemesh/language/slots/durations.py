"""Lengths of time: "5 minutes", "an hour and a half", "90 seconds", "1h30m", "half an hour".

Expects text whose numbers are already digits (see ``numbers.normalize_numbers``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

UNIT_SECONDS: Final = {
    "second": 1, "sec": 1, "secs": 1, "s": 1, "minute": 60, "min": 60, "mins": 60, "m": 60,
    "hour": 3600, "hr": 3600, "hrs": 3600, "h": 3600, "day": 86400, "d": 86400,
    "week": 604800, "wk": 604800, "wks": 604800, "fortnight": 1209600,
}  # fmt: skip

_UNIT = (
    r"(?:seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|wks?|fortnights?)"
    r"(?![a-z])"
)
# One component: "5 minutes", "1.5h", "an hour", "a minute".
_COMPONENT = re.compile(
    rf"(?:(?<![\w.])|(?<=\d[hmsd]))(?P<num>\d+(?:\.\d+)?|an?|one)\s*-?\s*(?P<unit>{_UNIT})", re.IGNORECASE
)
_HALF_OF = re.compile(rf"\b(?:half\s+(?:an?\s+)?|a\s+half\s+)(?P<unit>{_UNIT})", re.IGNORECASE)
_QUARTER_OF = re.compile(
    rf"\b(?:a\s+)?quarter\s+(?:of\s+)?(?:an?\s+)?(?P<unit>{_UNIT})", re.IGNORECASE
)  # "a quarter of an hour"
_JOINER = re.compile(r"^\s*(?:,|and|,\s*and|plus)?\s*$", re.IGNORECASE)
_AND_A_HALF = re.compile(r"\s*and\s+a\s+half\b", re.IGNORECASE)
# "1:30" in a timer means one minute thirty (m:ss), "1:30:00" hours.
_CLOCK = re.compile(r"\b(\d{1,2}):([0-5]\d)(?::([0-5]\d))?\b")


@dataclass(frozen=True)
class DurationMention:
    """A duration and where it was written (``start``/``end`` index ``text``)."""

    value: timedelta
    start: int
    end: int
    text: str


def _seconds(unit: str) -> float:
    unit = unit.lower()
    if unit in UNIT_SECONDS:
        return UNIT_SECONDS[unit]
    return UNIT_SECONDS[unit.rstrip("s")]


class _Searches:
    """``pattern.search(text, pos)`` for positions that only grow, each answer kept until a later
    position passes its start: find_durations asks from every component's end, and searching
    anew each time reads the text after it again for each component (quadratic in the text)."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._found: dict[re.Pattern[str], tuple[int, re.Match[str] | None]] = {}

    def search(self, pattern: re.Pattern[str], pos: int) -> re.Match[str] | None:
        kept = self._found.get(pattern)
        # A search from ``asked`` that found a match at ``start`` (or none) tried every position
        # between the two: a search from any of them finds the same.
        if kept is not None and kept[0] <= pos and (kept[1] is None or kept[1].start() >= pos):
            return kept[1]
        found = pattern.search(self._text, pos)
        self._found[pattern] = (pos, found)
        return found


def _component_at(searches: _Searches, pos: int) -> tuple[float, int, int] | None:
    """The first component starting at or after ``pos`` (seconds, start, end)."""
    best: tuple[float, int, int] | None = None
    for pattern in (_COMPONENT, _HALF_OF, _QUARTER_OF):
        m = searches.search(pattern, pos)
        while m is not None and pattern is _COMPONENT:
            num = m.group("num").lower()
            # "and" is not "an d", nor "a m" a minute: an article needs a spelled-out unit.
            if num not in ("a", "an") or len(m.group("unit")) > 1:
                break
            m = searches.search(pattern, m.end())
        if m is None:
            continue
        if pattern is _COMPONENT:
            num = m.group("num").lower()
            amount = 1.0 if num in ("a", "an", "one") else float(num)
        else:
            amount = 0.5 if pattern is _HALF_OF else 0.25
        if best is None or m.start() < best[1]:
            best = (amount * _seconds(m.group("unit")), m.start(), m.end())
    return best


def find_durations(text: str) -> list[DurationMention]:
    """Every duration in ``text``, adjacent components ("1 hour and 30 minutes") summed into one."""
    found: list[DurationMention] = []
    searches = _Searches(text)
    pos = 0
    while True:
        first = _component_at(searches, pos)
        if first is None:
            break
        total, start, end = first
        last_unit = total
        while True:
            half = _AND_A_HALF.match(text, end)
            if half:
                # "an hour and a half": half of the unit just named.
                total += last_unit / 2
                end = half.end()
                continue
            nxt = _component_at(searches, end)
            if nxt is None or not _JOINER.match(text[end : nxt[1]]):
                break
            total += nxt[0]
            last_unit = nxt[0]
            end = nxt[2]
        found.append(DurationMention(timedelta(seconds=total), start, end, text[start:end]))
        pos = end
    if not found:
        for m in _CLOCK.finditer(text):
            a, b, c = int(m.group(1)), int(m.group(2)), m.group(3)
            seconds = a * 3600 + b * 60 + int(c) if c else a * 60 + b
            found.append(DurationMention(timedelta(seconds=seconds), m.start(), m.end(), m.group()))
    return found


def find_duration(text: str) -> DurationMention | None:
    """The first duration in ``text``, if any."""
    found = find_durations(text)
    return found[0] if found else None
