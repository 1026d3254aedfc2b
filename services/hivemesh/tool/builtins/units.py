"""convert_units: length, mass, volume, temperature (affine), speed, area, data sizes, time, with pint.

A unit is read by pint's expression parser only when it has the shape of a unit (``_UNIT``): names
joined by spaces, ``*`` or ``/``, each raised at most to a two-digit power. Anything else (a
number, parentheses, ``__import__('os')``) is an unknown unit before pint sees it, so no unit
text can make the parser compute, and none reaches it that it might fail on unexpectedly.
``cpu_bound`` all the same: the conversion runs in a worker process its timeout can kill.
"""

from __future__ import annotations

import functools
import math
import re
import threading
from typing import Annotated, Any, TypedDict

import pint

from hivemesh.mesh.errors import InvalidArgument
from hivemesh.tool.decorator import Arg, tool
from hivemesh.tool.expression import format_number
from hivemesh.tool.model import Fill, Serves, SlotPart, ToolOutput
from hivemesh.world.units import unit_alias

_NAME = r"[A-Za-z\u00b0\u00b5\u03bc\u03a9\u2126_][A-Za-z0-9\u00b0\u00b5\u03bc\u03a9\u2126_]*"
_POWER = r"(?:\s*(?:\*\*|\^)\s*-?\d{1,2})?"
_UNIT = re.compile(rf"{_NAME}{_POWER}(?:(?:\s*[*/]\s*|\s+){_NAME}{_POWER})*")
_PLURALS = {"foot": "feet", "inch": "inches", "century": "centuries", "hertz": "hertz", "siemens": "siemens"}
_POWERS = {2: "square", 3: "cubic"}


_registry_lock = threading.Lock()


@functools.cache
def _registry() -> pint.UnitRegistry[Any]:
    return pint.UnitRegistry()


def unit_registry() -> pint.UnitRegistry[Any]:
    """Built once per process (it takes a few hundred milliseconds), then only read; a call that
    comes while ``warm_up`` builds it waits for that one."""
    with _registry_lock:
        return _registry()


def warm_up() -> None:
    """Build the registry now: a worker process runs this in a thread from its start."""
    unit_registry()


class ConversionResult(TypedDict):
    value: float
    unit: str
    from_value: float
    from_unit: str


@tool(
    name="convert_units",
    result=ConversionResult,
    timeout_s=2.0,
    cpu_bound=True,
    serves=Serves(
        "unit_conversion",
        {
            "value": Fill("quantity", part=SlotPart.QUANTITY_VALUE, question="How much should I convert?"),
            "from_unit": Fill(
                "quantity", part=SlotPart.QUANTITY_UNIT, question="Which unit are you converting from?"
            ),
            "to_unit": Fill("to_unit", question="Which unit should I convert to?", joiner="to"),
        },
    ),
)
def convert_units(
    value: float,
    from_unit: Annotated[str, Arg(min_length=1, max_length=64)],
    to_unit: Annotated[str, Arg(min_length=1, max_length=64)],
) -> ToolOutput:
    """Convert a quantity between units of length, mass, volume, temperature, speed, area, data size
    or time (e.g. 5 miles to kilometers, 100 F to C, 1 GiB to MB).

    Args:
        value: The amount to convert.
        from_unit: The unit of the amount, e.g. "mile", "degF", "GB".
        to_unit: The unit wanted, e.g. "km", "celsius", "MB".
    """
    registry = unit_registry()
    source = _parse("arguments.from_unit", from_unit)
    target = _parse("arguments.to_unit", to_unit)
    try:
        converted = registry.Quantity(value, source).to(target)
    except pint.DimensionalityError:
        raise InvalidArgument.field(
            "arguments.to_unit",
            f"cannot convert {from_unit} ({registry.Quantity(1, source).dimensionality}) "
            f"to {to_unit} ({registry.Quantity(1, target).dimensionality})",
            reason="INCOMPATIBLE_UNITS",
        ) from None
    except pint.OffsetUnitCalculusError:
        raise InvalidArgument.field(
            "arguments.from_unit",
            "temperatures convert only between plain temperature units",
            reason="INCOMPATIBLE_UNITS",
        ) from None
    amount = float(converted.magnitude)
    if not math.isfinite(amount):
        raise InvalidArgument.field(
            "arguments.value", f"{value:g} {from_unit} is too large in {to_unit}", reason="OVERFLOW"
        )
    return ToolOutput(
        {"value": amount, "unit": str(converted.units), "from_value": value, "from_unit": str(source)},
        f"{format_number(amount, 4)} {unit_name(converted, amount)}",
    )


def _parse(field: str, text: str) -> Any:
    cleaned = re.sub(r"\s+", " ", text.strip())
    # The aliases the language service reads units by ("fl oz", "kilos", "celcius"), so a model
    # that fills these arguments from the user's words is understood as the built-in planner is.
    name = unit_alias(cleaned) or cleaned
    # pint reads "square meter" and "kilometer/hour" but not the identifier forms "square_meter" and
    # "kilometer_per_hour" that the language service and callers send.
    spelled = re.sub(r"^(square|cubic)_", r"\1 ", name.replace("_per_", "/"))
    candidates = [name.replace("_per_", "/"), spelled, name]
    for candidate in candidates:
        parsed = _parse_units(candidate) if _UNIT.fullmatch(candidate) else None
        if parsed is not None:
            return parsed
    raise InvalidArgument.field(field, f"unknown unit {text!r}", reason="UNKNOWN_UNIT")


def _parse_units(text: str) -> Any | None:
    try:
        return unit_registry().parse_units(text)
    except Exception:  # pint's parser fails on malformed units in assorted ways (assertions among them)
        return None


def unit_name(quantity: Any, amount: float) -> str:
    """Long unit names read aloud: "8.047 kilometers", "1 kilometer per hour", "3 square meters"."""
    top = [(n, p) for n, p in quantity.unit_items() if p > 0]
    bottom = [(n, -p) for n, p in quantity.unit_items() if p < 0]
    plural = abs(amount) != 1

    def words(items: list[tuple[str, float]], pluralize: bool) -> str:
        out = []
        for i, (name, power) in enumerate(items):
            word = name.replace("_", " ")
            if pluralize and i == len(items) - 1:
                word = _plural(word)
            out.append(f"{_POWERS[int(power)]} {word}" if power in _POWERS else word)
        return " ".join(out)

    text = words(top, plural) if top else "1"
    return f"{text} per {words(bottom, pluralize=False)}" if bottom else text


def _plural(word: str) -> str:
    if word.startswith("degree "):
        return "degrees " + word.removeprefix("degree ")
    return _PLURALS.get(word, word if word.endswith("s") else word + "s")
