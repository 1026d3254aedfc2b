"""Calendar dates written every way people write them, resolved against today's date.

Absolute: ``2026-03-01``, ``March 1, 2026``, ``1 March 2026``, ``the 3rd of March``, ``Christmas 2026``.
Numeric dates with slashes are read US style, month first (``3/1/2026`` is March 1); when the first
number cannot be a month (``25/12/2026``) they are read day first. Dotted dates (``1.3.2026``) are
read day first, as they are written where that form is used.
Relative: ``today``, ``tomorrow``, ``yesterday``, ``the day after tomorrow``, ``next Friday``,
``in 3 weeks``, ``10 days ago``, ``next month``.
Of a month: ``the first Monday of March``, ``the last Friday of the month``, ``the end of the month``,
``the last day of February``. Holidays that move: ``Thanksgiving``, ``Easter``, ``Labor Day`` (see
``movable``).

A date written without a year takes the year of another date written with one in the same request
(``between March 1 and April 15 2026``); otherwise its next occurrence from today, or its last one
when ``prefer_past`` (the request asks about the past: "since", "was", "ago").
Expects text whose numbers are already digits (see ``numbers.normalize_numbers``).
"""

from __future__ import annotations

import bisect
import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Final

from hivemesh.language.slots.movable import NAMES as MOVABLE_HOLIDAYS
from hivemesh.language.slots.movable import holiday_date

MONTHS: Final = {
    "jan": 1, "january": 1, "feb": 2, "february": 2, "febuary": 2, "mar": 3, "march": 3, "apr": 4,
    "april": 4, "may": 5, "jun": 6, "june": 6, "jul": 7, "july": 7, "aug": 8, "august": 8, "sep": 9,
    "sept": 9, "september": 9, "oct": 10, "october": 10, "nov": 11, "november": 11, "dec": 12,
    "december": 12,
}  # fmt: skip
WEEKDAYS: Final = {
    "monday": 0, "mon": 0, "tuesday": 1, "tues": 1, "tue": 1, "wednesday": 2, "weds": 2, "wed": 2,
    "thursday": 3, "thurs": 3, "thur": 3, "thu": 3, "friday": 4, "fri": 4, "saturday": 5, "sat": 5,
    "sunday": 6,
}  # fmt: skip
# Fixed-date holidays: (month, day).
HOLIDAYS: Final = {
    "christmas eve": (12, 24), "christmas day": (12, 25), "christmas": (12, 25), "xmas": (12, 25),
    "boxing day": (12, 26), "new year's eve": (12, 31), "new years eve": (12, 31),
    "new year's day": (1, 1), "new years day": (1, 1), "new year's": (1, 1), "new years": (1, 1),
    "new year": (1, 1), "halloween": (10, 31), "valentine's day": (2, 14), "valentines day": (2, 14),
    "valentine's": (2, 14), "independence day": (7, 4), "st patrick's day": (3, 17),
    "st. patrick's day": (3, 17), "saint patrick's day": (3, 17), "april fools day": (4, 1),
    "april fool's day": (4, 1),
}  # fmt: skip
ORDINALS: Final = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
}  # fmt: skip

_MONTH_NAMES = "|".join(sorted(MONTHS, key=len, reverse=True))
_MONTH = rf"(?P<month>{_MONTH_NAMES})\.?"
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?:,?\s*(?P<year>\d{4})(?!\d))?"
_ORDINAL_WORD = "|".join(sorted(ORDINALS, key=len, reverse=True))
_COMPOUND_ORDINAL = re.compile(rf"\b(twenty|thirty)[\s-]+({_ORDINAL_WORD})\b", re.IGNORECASE)
_ORDINAL_AFTER = re.compile(rf"\b((?:the|{_MONTH_NAMES})\.?\s+)({_ORDINAL_WORD})\b", re.IGNORECASE)
_ORDINAL_BEFORE = re.compile(rf"\b({_ORDINAL_WORD})(?=\s+(?:of\s+)?(?:{_MONTH_NAMES})\b)", re.IGNORECASE)

_WEEKDAY_WORDS = r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|tues|weds|thurs"
_NTH: Final = {"1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5, "last": -1, **ORDINALS}
# "month", "the month", "this month", "next month", or a month's name (with an optional year).
_OF_MONTH = rf"(?:the\s+)?(?:(?P<rel>this|next|last)\s+month|month|{_MONTH}{_YEAR})"

_PATTERNS: Final = (
    (
        "nth_weekday",
        re.compile(
            r"\b(?:the\s+)?(?P<nth>1st|2nd|3rd|4th|5th|first|second|third|fourth|fifth|last)\s+"
            rf"(?P<weekday>{_WEEKDAY_WORDS})\s+(?:of|in)\s+{_OF_MONTH}(?![a-z])",
            re.I,
        ),
    ),
    (
        "month_end",
        re.compile(rf"\b(?:the\s+)?(?:very\s+)?(?:end|last\s+day)\s+of\s+{_OF_MONTH}(?![a-z])", re.I),
    ),
    (
        "movable",
        re.compile(
            r"\b(?P<movable>"
            + "|".join(re.escape(h) for h in sorted(MOVABLE_HOLIDAYS, key=len, reverse=True))
            + r")(?![a-z])"
            + _YEAR,
            re.I,
        ),
    ),
    ("iso", re.compile(r"\b(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})\b")),
    ("slash", re.compile(r"(?<![\d/])(?P<a>\d{1,2})/(?P<b>\d{1,2})(?:/(?P<year>\d{4}|\d{2}))?(?![\d/])")),
    ("dotted", re.compile(r"(?<![\d.])(?P<day>\d{1,2})\.(?P<month>\d{1,2})\.(?P<year>\d{4})(?![\d.])")),
    (
        "month_day",
        re.compile(rf"\b{_MONTH}\s+(?:the\s+)?{_DAY}\b(?!:|\s*(?:am|pm|a\.m|p\.m)\b){_YEAR}", re.I),
    ),
    ("day_month", re.compile(rf"\b(?:the\s+)?{_DAY}\s+(?:of\s+)?{_MONTH}(?![a-z]){_YEAR}", re.I)),
    (
        "holiday",
        re.compile(
            r"\b(?P<holiday>" + "|".join(re.escape(h) for h in sorted(HOLIDAYS, key=len, reverse=True)) + r")"
            r"(?![a-z])" + _YEAR,
            re.I,
        ),
    ),
    ("day_after_tomorrow", re.compile(r"\b(?:the\s+)?day\s+after\s+tomorrow\b", re.I)),
    ("day_before_yesterday", re.compile(r"\b(?:the\s+)?day\s+before\s+yesterday\b", re.I)),
    ("today", re.compile(r"\b(?:today|tonight|now|this\s+(?:morning|afternoon|evening))\b", re.I)),
    ("tomorrow", re.compile(r"\b(?:tomorrow|tomorow|tommorow|tommorrow|tmrw|tmr)\b", re.I)),
    ("yesterday", re.compile(r"\b(?:yesterday|yday)\b", re.I)),
    (
        "weekday",
        re.compile(
            r"\b(?:(?P<which>next|this|last|coming|this\s+coming|past|previous)\s+)?"
            r"(?P<weekday>monday|tuesday|wednesday|thursday|friday|saturday|sunday|tues|weds|thurs)s?\b",
            re.I,
        ),
    ),
    (
        "offset",
        re.compile(
            r"\b(?:in\s+(?P<n1>\d+(?:\.\d+)?|an?)\s+(?P<u1>day|week|month|year|fortnight)s?(?:\s+time)?\b"
            r"|(?P<n2>\d+(?:\.\d+)?|an?)\s+(?P<u2>day|week|month|year|fortnight)s?\s+"
            r"(?P<dir>from\s+(?:now|today)|hence|later|ago|back|from\s+this\s+day)\b)",
            re.I,
        ),
    ),
    ("next_unit", re.compile(r"\b(?P<which>next|last)\s+(?P<unit>week|month|year)\b", re.I)),
)
_WEEKDAY_NAME = re.compile(r"^(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)$", re.I)


@dataclass(frozen=True)
class DateMention:
    """A date and where it was written; ``explicit_year`` when the text named the year."""

    value: date
    start: int
    end: int
    text: str
    kind: str
    explicit_year: bool = True


def add_months(day: date, months: int) -> date:
    """``day`` moved by whole months, clamped to the month's last day (Jan 31 + 1 month = Feb 28)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def shift(day: date, amount: float, unit: str) -> date:
    """``day`` moved by ``amount`` days, weeks, fortnights, months or years (negative = earlier)."""
    unit = unit.lower().rstrip("s")
    if unit == "month":
        return add_months(day, round(amount))
    if unit == "year":
        return add_months(day, round(amount * 12))
    days = {"day": 1, "week": 7, "fortnight": 14}[unit]
    return day + timedelta(days=round(amount * days))


def normalize_ordinals(text: str) -> str:
    """ "twenty-first" -> "21st"; "third" -> "3rd" next to a month or after "the"."""

    def suffix(n: int) -> str:
        if 10 <= n % 100 <= 20:
            return f"{n}th"
        return f"{n}" + {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")

    text = _COMPOUND_ORDINAL.sub(
        lambda m: suffix({"twenty": 20, "thirty": 30}[m.group(1).lower()] + ORDINALS[m.group(2).lower()]),
        text,
    )
    text = _ORDINAL_AFTER.sub(lambda m: m.group(1) + suffix(ORDINALS[m.group(2).lower()]), text)
    return _ORDINAL_BEFORE.sub(lambda m: suffix(ORDINALS[m.group(1).lower()]), text)


def _valid(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _year(raw: str | None) -> int | None:
    if raw is None:
        return None
    value = int(raw)
    return value + 2000 if value < 100 else value


def _weekday(today: date, weekday: int, which: str | None, prefer_past: bool) -> date:
    ahead = (weekday - today.weekday()) % 7
    which = " ".join((which or "").lower().split())
    if which in ("last", "past", "previous") or (not which and prefer_past):
        back = (today.weekday() - weekday) % 7 or 7
        return today - timedelta(days=back)
    if which == "next":
        # "next Friday" is the first Friday after today, never today itself.
        return today + timedelta(days=ahead or 7)
    return today + timedelta(days=ahead)


def nth_weekday(year: int, month: int, weekday: int, nth: int) -> date | None:
    """The ``nth`` (1 to 5, or -1 for the last) ``weekday`` of a month; None when it has no 5th."""
    days = [
        d
        for d in range(1, calendar.monthrange(year, month)[1] + 1)
        if date(year, month, d).weekday() == weekday
    ]
    index = nth - 1 if nth > 0 else nth
    return date(year, month, days[index]) if -len(days) <= index < len(days) else None


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _occurrence(make: Callable[[int], date | None], today: date, prefer_past: bool) -> date | None:
    """The next date ``make(year)`` gives from today on (the last one up to today when ``prefer_past``)."""
    for years in range(6):
        year = today.year - years if prefer_past else today.year + years
        if not 1 <= year <= 9999:
            return None
        found = make(year)
        if found is not None and (found <= today if prefer_past else found >= today):
            return found
    return None


def _of_month(
    groups: dict[str, str | None], today: date, prefer_past: bool, day_of: Callable[[int, int], date | None]
) -> date | None:
    """``day_of(year, month)`` for the month a match names: this, next or last month, a named
    month (its next occurrence unless the year is given), or "the month" (this one, or the next
    when the day has passed)."""
    rel, raw_month, year = (groups.get("rel") or "").lower(), groups.get("month"), _year(groups.get("year"))
    if raw_month is not None:
        month = MONTHS[raw_month.lower().rstrip(".")]
        if year is not None:
            return day_of(year, month)
        return _occurrence(lambda y: day_of(y, month), today, prefer_past)
    this = date(today.year, today.month, 1)
    if rel in ("next", "last"):
        first = add_months(this, 1 if rel == "next" else -1)
        return day_of(first.year, first.month)
    found = day_of(this.year, this.month)
    if rel == "" and (found is None or found < today):
        following = add_months(this, 1)
        return day_of(following.year, following.month)
    return found


def _resolve(kind: str, m: re.Match[str], today: date, prefer_past: bool) -> tuple[date, bool] | None:
    """(date, explicit_year) for one match; a date without a year is resolved later."""
    groups = m.groupdict()
    if kind == "nth_weekday":
        nth, weekday = _NTH[groups["nth"].lower()], WEEKDAYS[groups["weekday"].lower()]
        found = _of_month(groups, today, prefer_past, lambda y, mo: nth_weekday(y, mo, weekday, nth))
        return None if found is None else (found, True)
    if kind == "month_end":
        found = _of_month(groups, today, prefer_past, _month_end)
        return None if found is None else (found, True)
    if kind == "movable":
        name, year = groups["movable"], _year(groups.get("year"))
        found = (
            holiday_date(name, year)
            if year is not None
            else _occurrence(lambda y: holiday_date(name, y), today, prefer_past)
        )
        return None if found is None else (found, True)
    if kind in ("iso", "dotted", "month_day", "day_month", "holiday", "slash"):
        year = _year(groups.get("year"))
        if kind == "slash":
            a, b = int(groups["a"]), int(groups["b"])
            month, day = (a, b) if a <= 12 else (b, a)
        elif kind == "holiday":
            month, day = HOLIDAYS[" ".join(groups["holiday"].lower().split())]
        else:
            raw_month = groups["month"].lower().rstrip(".")
            month = MONTHS[raw_month] if raw_month in MONTHS else int(raw_month)
            day = int(groups["day"])
        found = _valid(year or 2000, month, day)  # 2000 is a leap year, so Feb 29 passes for now
        if found is None:
            return None
        return (found, True) if year is not None else (found, False)
    if kind == "today":
        return today, True
    if kind == "tomorrow":
        return today + timedelta(days=1), True
    if kind == "yesterday":
        return today - timedelta(days=1), True
    if kind == "day_after_tomorrow":
        return today + timedelta(days=2), True
    if kind == "day_before_yesterday":
        return today - timedelta(days=2), True
    if kind == "weekday":
        name = groups["weekday"].lower()
        return _weekday(today, WEEKDAYS[name], groups.get("which"), prefer_past), True
    if kind == "offset":
        raw = (groups.get("n1") or groups.get("n2") or "1").lower()
        amount = 1.0 if raw in ("a", "an") else float(raw)
        unit = groups.get("u1") or groups.get("u2") or "day"
        direction = (groups.get("dir") or "").lower()
        sign = -1 if direction in ("ago", "back") else 1
        return shift(today, sign * amount, unit), True
    if kind == "next_unit":
        sign = 1 if groups["which"].lower() == "next" else -1
        return shift(today, sign, groups["unit"]), True
    return None


def _nearest(anchors: list[DateMention], starts: list[int], at: int) -> DateMention | None:
    """The anchor written nearest to ``at`` (the earlier of two as near); ``starts`` are theirs, in order."""
    after = bisect.bisect_left(starts, at)
    near = [anchors[i] for i in (after - 1, after) if 0 <= i < len(anchors)]
    return min(near, key=lambda o: abs(o.start - at)) if near else None


def _year_for(
    mention: DateMention, anchors: list[DateMention], starts: list[int], today: date, prefer_past: bool
) -> date:
    month, day = mention.value.month, mention.value.day
    anchor = _nearest(anchors, starts, mention.start)
    if anchor is not None:
        candidate = _valid(anchor.value.year, month, day) or date(anchor.value.year, month, 28)
        # "between December 20 and January 5 2027": the earlier-written date is in the year before.
        if mention.start < anchor.start and candidate > anchor.value:
            candidate = _valid(anchor.value.year - 1, month, day) or date(anchor.value.year - 1, month, 28)
        return candidate
    for years in range(5):
        year = today.year - years if prefer_past else today.year + years
        found = _valid(year, month, day)
        if found is None:
            continue
        if (prefer_past and found <= today) or (not prefer_past and found >= today):
            return found
    return date(today.year, month, min(day, 28))


def find_dates(text: str, today: date, *, prefer_past: bool = False) -> list[DateMention]:
    """Every date in ``text`` in the order written; overlapping forms keep the longest."""
    found: list[DateMention] = []
    # "the fifth Monday of February" names no date: its words then name none either ("Monday").
    void: list[tuple[int, int]] = []
    for kind, pattern in _PATTERNS:
        for m in pattern.finditer(text):
            if any(start <= m.start() < end for start, end in void):
                continue
            resolved = _resolve(kind, m, today, prefer_past)
            if resolved is None:
                if kind == "nth_weekday":
                    void.append(m.span())
                continue
            value, explicit = resolved
            found.append(DateMention(value, m.start(), m.end(), m.group().strip(), kind, explicit))
    found.sort(key=lambda d: (d.start, -(d.end - d.start)))
    kept: list[DateMention] = []
    for mention in found:
        if kept and mention.start < kept[-1].end:
            continue
        kept.append(mention)
    # "Friday, March 6": the weekday only repeats the date that follows it.
    kept = [
        k
        for i, k in enumerate(kept)
        if not (
            k.kind == "weekday"
            and i + 1 < len(kept)
            and kept[i + 1].kind not in ("weekday", "offset", "today", "tomorrow", "yesterday")
            and re.fullmatch(r"[\s,]*(?:the\s+)?", text[k.end : kept[i + 1].start])
        )
    ]
    # Found once, then looked up by position: a yearless date takes the year of the nearest date
    # written with one, and comparing every date with every other is quadratic in their number.
    anchors = [o for o in kept if o.explicit_year and o.kind != "offset"]
    starts = [o.start for o in anchors]
    return [
        k
        if k.explicit_year
        else replace(k, value=_year_for(k, anchors, starts, today, prefer_past), explicit_year=False)
        for k in kept
    ]
