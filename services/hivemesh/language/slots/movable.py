"""Holidays whose date moves from year to year ("thanksgiving", "easter", "labor day"), read from the
``holidays`` package's United States calendar (public, government and unofficial days, so Easter,
Mother's Day and Groundhog Day are there too).

A year's table is built once and kept (``warm_up`` builds this year's and the next at start-up), so
a request only looks a name up.
"""

from __future__ import annotations

import functools
from datetime import date
from typing import Final

import holidays
from holidays.countries.united_states import UnitedStates

# How people say each holiday -> a word of its name in the calendar (matched case-insensitively).
NAMES: Final = {
    "thanksgiving day": "thanksgiving", "thanksgiving": "thanksgiving",
    "easter sunday": "easter sunday", "easter": "easter sunday", "good friday": "good friday",
    "mother's day": "mother's day", "mothers day": "mother's day",
    "father's day": "father's day", "fathers day": "father's day",
    "memorial day": "memorial day", "labor day": "labor day", "labour day": "labor day",
    "martin luther king day": "martin luther king", "martin luther king jr day": "martin luther king",
    "mlk day": "martin luther king", "presidents day": "washington's birthday",
    "presidents' day": "washington's birthday", "president's day": "washington's birthday",
    "washington's birthday": "washington's birthday", "columbus day": "columbus day",
    "veterans day": "veterans day", "juneteenth": "juneteenth", "groundhog day": "groundhog day",
}  # fmt: skip


@functools.lru_cache(maxsize=16)
def _calendar(year: int) -> dict[str, date]:
    """Lower-cased holiday name -> its date in ``year`` (observed days left out)."""
    table = holidays.country_holidays("US", years=year, categories=UnitedStates.supported_categories)
    days: dict[str, date] = {}
    for day, names in sorted(table.items()):
        for name in names.split("; "):
            if "(observed)" not in name:
                days.setdefault(name.lower(), day)
    return days


def holiday_date(phrase: str, year: int) -> date | None:
    """The date of the holiday ``phrase`` names in ``year``, or None if it names none or the
    calendar has no such day that year."""
    word = NAMES.get(" ".join(phrase.lower().split()))
    if word is None or not 1 <= year <= 9999:
        return None
    return next((day for name, day in _calendar(year).items() if word in name), None)


def warm_up(year: int) -> None:
    """Build the tables of ``year`` and the next, which nearly every request asks about."""
    _calendar(year)
    _calendar(year + 1)
