"""Unit words as people type them, normalised to pint unit names (``"klometers"`` -> ``kilometer``).

Order of trust: a table of everyday synonyms pint does not know (``"sq ft"``, ``"celcius"``), then
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

# Written forms pint does not parse, or parses into something a person did not mean ("a" is annum).
SYNONYMS: Final = {
    "°f": "degree_Fahrenheit", "f": "degree_Fahrenheit", "deg f": "degree_Fahrenheit",
    "degf": "degree_Fahrenheit", "fahrenheit": "degree_Fahrenheit", "farenheit": "degree_Fahrenheit",
    "fahrenheight": "degree_Fahrenheit", "faranheit": "degree_Fahrenheit",
    "°c": "degree_Celsius", "c": "degree_Celsius", "deg c": "degree_Celsius", "degc": "degree_Celsius",
    "celsius": "degree_Celsius", "celcius": "degree_Celsius", "celsius degrees": "degree_Celsius",
    "centigrade": "degree_Celsius", "°k": "kelvin", "k": "kelvin", "kelvins": "kelvin",
    "mph": "mile_per_hour", "miles per hour": "mile_per_hour", "miles an hour": "mile_per_hour",
    "kph": "kilometer_per_hour", "kmh": "kilometer_per_hour", "km/h": "kilometer_per_hour",
    "kmph": "kilometer_per_hour", "km per hour": "kilometer_per_hour",
    "kilometers per hour": "kilometer_per_hour", "kilometres per hour": "kilometer_per_hour",
    "kilometers an hour": "kilometer_per_hour", "m/s": "meter_per_second",
    "meters per second": "meter_per_second", "metres per second": "meter_per_second",
    "sq ft": "square_foot", "sqft": "square_foot", "square feet": "square_foot",
    "square foot": "square_foot", "ft2": "square_foot", "ft²": "square_foot",
    "sq m": "square_meter", "square meters": "square_meter", "square metres": "square_meter",
    "square meter": "square_meter", "m2": "square_meter", "m²": "square_meter",
    "sq km": "square_kilometer", "square kilometers": "square_kilometer",
    "square kilometres": "square_kilometer", "km2": "square_kilometer", "km²": "square_kilometer",
    "sq mi": "square_mile", "square miles": "square_mile", "square mile": "square_mile",
    "sq in": "square_inch", "square inches": "square_inch", "square inch": "square_inch",
    "sq yd": "square_yard", "square yards": "square_yard", "square yard": "square_yard",
    "cubic feet": "cubic_foot", "cubic foot": "cubic_foot", "cubic meters": "cubic_meter",
    "cubic metres": "cubic_meter", "cubic meter": "cubic_meter", "cubic inches": "cubic_inch",
    "fl oz": "fluid_ounce", "floz": "fluid_ounce", "fluid ounces": "fluid_ounce",
    "fluid ounce": "fluid_ounce", "fl. oz": "fluid_ounce", "fl. oz.": "fluid_ounce",
    "tbsp": "tablespoon", "tbs": "tablespoon", "tsp": "teaspoon", "gb": "gigabyte", "mb": "megabyte",
    "kb": "kilobyte", "tb": "terabyte", "pb": "petabyte", "gib": "gibibyte", "mib": "mebibyte",
    "kib": "kibibyte", "tib": "tebibyte", "gigs": "gigabyte", "gig": "gigabyte", "megs": "megabyte",
    "lbs": "pound", "lb": "pound", "ibs": "pound", "stones": "stone", "st": "stone",
    "kgs": "kilogram", "kilo": "kilogram", "kilos": "kilogram", "gr": "gram", "grams": "gram",
    "mins": "minute", "min": "minute", "hrs": "hour", "hr": "hour", "secs": "second", "sec": "second",
    "yrs": "year", "yr": "year", "wk": "week", "wks": "week",
    "in": "inch", "ins": "inch", '"': "inch", "''": "inch", "'": "foot", "ft": "foot",
    "litre": "liter", "litres": "liter", "ltr": "liter", "l": "liter", "ml": "milliliter",
    "millilitres": "milliliter", "millilitre": "milliliter", "cl": "centiliter",
    "metre": "meter", "metres": "meter", "kilometre": "kilometer", "kilometres": "kilometer",
    "centimetre": "centimeter", "centimetres": "centimeter", "millimetre": "millimeter",
    "millimetres": "millimeter", "klicks": "kilometer", "nautical miles": "nautical_mile",
    "nautical mile": "nautical_mile", "nm": "nautical_mile", "knots": "knot", "kt": "knot",
    "us gallons": "gallon", "gallons": "gallon", "gal": "gallon", "imperial gallons": "imperial_gallon",
    "imperial gallon": "imperial_gallon", "pints": "pint", "pt": "pint", "quarts": "quart",
    "qt": "quart", "cups": "cup", "horsepower": "horsepower", "hp": "horsepower",
    "kwh": "kilowatt_hour", "kilowatt hours": "kilowatt_hour", "kilowatt hour": "kilowatt_hour",
    "calories": "kilocalorie", "calorie": "kilocalorie", "kcal": "kilocalorie", "cal": "kilocalorie",
    "btu": "british_thermal_unit", "psi": "psi", "atm": "atmosphere", "bar": "bar",
    "light years": "light_year", "light year": "light_year", "ly": "light_year",
    "microns": "micrometer", "micron": "micrometer",
}  # fmt: skip

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
_FUZZY_VOCABULARY: Final = tuple(sorted({*SYNONYMS, *_COMMON}))

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
    if lowered in SYNONYMS:
        return SYNONYMS[lowered]
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
