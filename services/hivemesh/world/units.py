"""Unit words as people write them, and the unit each names: the one table the language service
reads units with and the tool's ``convert_units`` accepts them by, so a unit reads the same whether
the built-in planner or a model fills the tool's arguments ("fl oz", "kilos", "celcius").

Values are pint unit names (``degree_Fahrenheit``, ``square_foot``, ``kilometer_per_hour``). Keys are
lower case with single spaces; ``unit_alias`` looks a written form up that way. "nm" is not here:
pint reads it as the nanometer, and the nautical mile is "nmi".
"""

from __future__ import annotations

from typing import Final

# Written forms pint does not parse, or parses into something a person did not mean ("c" is the
# coulomb, "kilos" kiloseconds, "fl oz" femtoliter-ounces).
UNIT_ALIASES: Final = {
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
    "nautical mile": "nautical_mile", "nmi": "nautical_mile", "knots": "knot", "kt": "knot",
    "us gallons": "gallon", "gallons": "gallon", "gal": "gallon", "imperial gallons": "imperial_gallon",
    "imperial gallon": "imperial_gallon", "pints": "pint", "pt": "pint", "quarts": "quart",
    "qt": "quart", "cups": "cup", "horsepower": "horsepower", "hp": "horsepower",
    "kwh": "kilowatt_hour", "kilowatt hours": "kilowatt_hour", "kilowatt hour": "kilowatt_hour",
    "calories": "kilocalorie", "calorie": "kilocalorie", "kcal": "kilocalorie", "cal": "kilocalorie",
    "btu": "british_thermal_unit", "psi": "psi", "atm": "atmosphere", "bar": "bar",
    "light years": "light_year", "light year": "light_year", "ly": "light_year",
    "microns": "micrometer", "micron": "micrometer",
    "degrees celsius": "degree_Celsius", "degrees fahrenheit": "degree_Fahrenheit", "sqm": "square_meter",
    "cc": "cubic_centimeter", "b": "byte", "bytes": "byte",
}  # fmt: skip


def unit_alias(text: str) -> str | None:
    """The pint name of the unit ``text`` is an alias of (any case, any spacing), or None."""
    return UNIT_ALIASES.get(" ".join(text.split()).lower())
