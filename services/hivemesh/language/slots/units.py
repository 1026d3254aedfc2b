"""Unit words as people type them, normalised to pint unit names (``"klometers"`` -> ``kilometer``).

Order of trust: the shared table of everyday aliases pint does not know (``"sq ft"``, ``"celcius"``,
``hivemesh.world.units``, which the tool's ``convert_units`` reads too), then
pint's own parser (plurals, prefixes, symbols), then a fuzzy match against known spellings for typos.
A candidate is accepted only when pint can build it, so the tool that converts never sees a name
it cannot parse.
"""

from __future__ import annotations

import difflib
import functools
import re
from typing import Any, Final

import pint

from hivemesh.world.units import UNIT_ALIASES

# Everyday words pint would read as units ("at" is a technical atmosphere, "me" a charge).
_NOT_UNITS: Final = frozenset(
    {"a", "an", "at", "are", "me", "my", "as", "by", "on", "or", "is", "it", "to", "of", "do", "be",
     "we", "us", "he", "she", "and", "the", "for", "how", "many", "much", "per", "into", "what", "one",
     "equals", "equal", "get", "got", "has", "have", "hour's", "each", "all", "day's", "am", "pm"}
)  # fmt: skip

# Spellings fuzzy matching may correct towards; pint's registry is too large to fuzzy-match
# against without turning ordinary words into obscure units.
_COMMON: Final = (
    "kilometers", "kilometer", "meters", "meter", "centimeters", "millimeters", "micrometers",
    "miles", "mile", "yards", "feet", "foot", "inches", "inch", "kilograms", "kilogram", "grams",
    "milligrams", "pounds", "pound", "ounces", "ounce", "stone", "tons", "tonnes", "liters",
    "milliliters", "gallons", "quarts", "pints", "cups", "tablespoons", "teaspoons", "seconds",
    "minutes", "hours", "days", "weeks", "months", "years", "milliseconds", "bytes", "kilobytes",
    "megabytes", "gigabytes", "terabytes", "petabytes", "bits", "megabits", "gigabits", "acres",
    "hectares", "joules", "kilojoules", "calories", "watts", "kilowatts", "megawatts", "horsepower",
    "newtons", "pascals", "kilopascals", "atmospheres", "degrees", "radians", "knots", "kelvin",
    "hertz", "kilohertz", "megahertz", "gigahertz", "volts", "amperes", "ohms", "decibels",
    "centuries", "decades", "nanometers", "fortnights",
)  # fmt: skip
_FUZZY_VOCABULARY: Final = tuple(sorted({*UNIT_ALIASES, *_COMMON}))

# Dropped before a unit: "degrees Celsius", "square" is kept because it changes the unit.
_FILLER = re.compile(r"^(?:degrees?|deg)\s+(?=\S)", re.IGNORECASE)
_SPLIT_SYMBOL = re.compile(r"^°\s*")


@functools.lru_cache(maxsize=1)
def registry() -> pint.UnitRegistry[Any]:
    """The one pint registry; built lazily because it takes most of a second."""
    return pint.UnitRegistry()


def _pint_name(candidate: str) -> str | None:
    if not candidate or not re.fullmatch(r"[A-Za-z_°µ][\w°µ/*^ ]*", candidate):
        return None
    try:
        units = registry().parse_units(candidate.replace(" ", "_"))
    except (pint.errors.UndefinedUnitError, pint.errors.DefinitionSyntaxError, ValueError, AttributeError):
        return None
    except Exception:
        return None
    name = str(units)
    return name if name and name != "dimensionless" else None


@functools.lru_cache(maxsize=1024)
def normalize_unit(text: str, *, fuzzy: bool = True) -> str | None:
    """The pint name of the unit ``text`` names, or None if it names none."""
    raw = " ".join(text.strip().rstrip(".?!,").split())
    if not raw:
        return None
    lowered = raw.lower()
    if lowered in UNIT_ALIASES:
        return UNIT_ALIASES[lowered]
    if lowered in _NOT_UNITS:
        return None
    stripped = _FILLER.sub("", lowered)
    if stripped != lowered:
        # "degrees Fahrenheit", "degrees C": a bare "degrees" stays an angle below.
        inner = normalize_unit(stripped, fuzzy=fuzzy)
        if inner is not None:
            return inner
    if lowered.startswith("°"):
        return normalize_unit(_SPLIT_SYMBOL.sub("", lowered), fuzzy=fuzzy)
    # Case matters to pint for symbols ("Mb" megabit vs "MB" megabyte), so try the raw form first;
    # short words are not sent to pint, which reads "a", "to" or "at" as units.
    for candidate in (raw, lowered):
        if len(candidate) < 2 and candidate not in ("m", "g", "s", "h"):
            continue
        name = _pint_name(candidate)
        if name is not None:
            return name
    if fuzzy and len(lowered) >= 4:
        close = difflib.get_close_matches(lowered, _FUZZY_VOCABULARY, n=1, cutoff=0.8)
        if close:
            return normalize_unit(close[0], fuzzy=False)
    return None
