"""Times of day for reminders: "9am", "at 5:30 pm", "at 17:00", "noon", "tonight", "in the morning".

Expects text whose numbers are already digits. A bare hour ("at 3") from 1 to 6 is read as
afternoon, as people rarely set reminders for 3 in the morning without saying so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time
from typing import Final

_CLOCK = re.compile(
    r"\b(?:at\s+|by\s+|@\s*)?(?P<h>[01]?\d|2[0-3])(?:[:.](?P<m>[0-5]\d))?\s*"
    r"(?P<ampm>a\.?m\.?|p\.?m\.?)(?![a-z])",
    re.IGNORECASE,
)
_TWENTY_FOUR = re.compile(
    r"\b(?:at\s+|by\s+|@\s*)?(?P<h>[01]?\d|2[0-3]):(?P<m>[0-5]\d)\b(?!\s*(?:am|pm))", re.I
)
_BARE_HOUR = re.compile(
    r"\b(?:at|by)\s+(?P<h>[01]?\d|2[0-3])(?:\s+o'?\s?clock)?\b(?![:.\d]|\s*(?:am|pm|%))", re.I
)
_O_CLOCK = re.compile(r"\b(?P<h>[01]?\d)\s+o'?\s?clock\b", re.I)
NAMED: Final = (
    (re.compile(r"\b(?:at\s+)?(?:noon|midday|lunchtime|lunch\s+time)\b", re.I), time(12, 0)),
    (re.compile(r"\b(?:at\s+)?midnight\b", re.I), time(0, 0)),
    (re.compile(r"\b(?:this|in\s+the)\s+morning\b|\bmorning\b", re.I), time(9, 0)),
    (re.compile(r"\b(?:this|in\s+the)\s+afternoon\b|\bafternoon\b", re.I), time(15, 0)),
    (re.compile(r"\b(?:this|in\s+the)\s+evening\b|\bevening\b", re.I), time(18, 0)),
    (re.compile(r"\btonight\b|\b(?:at\s+)?night\b", re.I), time(20, 0)),
)


@dataclass(frozen=True)
class TimeMention:
    """A time of day and where it was written."""

    value: time
    start: int
    end: int
    text: str


def _hour(h: int, ampm: str | None) -> int:
    if ampm is None:
        return h + 12 if 1 <= h <= 6 else h
    pm = ampm.lower().startswith("p")
    if h == 12:
        return 12 if pm else 0
    return h + 12 if pm else h


def find_time(text: str) -> TimeMention | None:
    """The first clock time or named time of day in ``text``."""
    candidates: list[TimeMention] = []
    for m in _CLOCK.finditer(text):
        t = time(_hour(int(m.group("h")) % 24, m.group("ampm")) % 24, int(m.group("m") or 0))
        candidates.append(TimeMention(t, m.start(), m.end(), m.group()))
    for m in _TWENTY_FOUR.finditer(text):
        h = int(m.group("h"))
        t = time(_hour(h, None) if h <= 6 and h != 0 else h, int(m.group("m")))
        candidates.append(TimeMention(t, m.start(), m.end(), m.group()))
    for pattern in (_BARE_HOUR, _O_CLOCK):
        for m in pattern.finditer(text):
            candidates.append(
                TimeMention(time(_hour(int(m.group("h")), None) % 24), m.start(), m.end(), m.group())
            )
    if not candidates:
        for pattern, value in NAMED:
            named = pattern.search(text)
            if named:
                candidates.append(TimeMention(value, named.start(), named.end(), named.group()))
    if not candidates:
        return None
    return min(candidates, key=lambda c: (c.start, -(c.end - c.start)))
