"""Typed slot values: one ``SlotKind`` per case of the proto ``Slot.value`` oneof.

Several kinds share a Python type (a unit, a name and free text are all ``str``), so the kind is
carried explicitly instead of being guessed from the value; ``__post_init__`` keeps the two in step.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass


class SlotKind(enum.Enum):
    """Which case of the proto oneof a slot fills; the values are the oneof field names."""

    NUMBER = "number"
    QUANTITY = "quantity"
    UNIT = "unit"
    DATE = "date"
    DATE_TIME = "date_time"
    DURATION = "duration"
    ITEMS = "items"
    NAME = "name_value"
    TEXT = "text"


@dataclass(frozen=True)
class Quantity:
    """A number with a unit; ``unit`` is a pint unit name such as ``kilometer`` or ``degree_Celsius``."""

    value: float
    unit: str


SlotData = float | Quantity | str | dt.date | dt.datetime | dt.timedelta | tuple[str, ...]


def _matches(kind: SlotKind, value: SlotData) -> bool:
    # datetime is a subclass of date, so a DATE must be checked not to be a datetime.
    match kind:
        case SlotKind.NUMBER:
            return isinstance(value, float)
        case SlotKind.QUANTITY:
            return isinstance(value, Quantity)
        case SlotKind.UNIT | SlotKind.NAME | SlotKind.TEXT:
            return isinstance(value, str)
        case SlotKind.DATE:
            return isinstance(value, dt.date) and not isinstance(value, dt.datetime)
        case SlotKind.DATE_TIME:
            return isinstance(value, dt.datetime) and value.tzinfo is not None
        case SlotKind.DURATION:
            return isinstance(value, dt.timedelta)
        case SlotKind.ITEMS:
            return isinstance(value, tuple) and all(isinstance(v, str) for v in value)


@dataclass(frozen=True)
class SlotValue:
    """One typed value found in the text.

    ``source_text`` is the words it was read from (empty when the value is implied, e.g. "today"
    for "days until Christmas"). Date-times are always timezone-aware. Build with the class methods,
    which also normalise the Python type (``number(..., 3)`` stores ``3.0``).
    """

    name: str
    source_text: str
    kind: SlotKind
    value: SlotData

    def __post_init__(self) -> None:
        if not _matches(self.kind, self.value):
            raise TypeError(f"slot {self.name!r}: {type(self.value).__name__} is not a {self.kind.value}")

    @classmethod
    def number(cls, name: str, source_text: str, value: float) -> SlotValue:
        return cls(name, source_text, SlotKind.NUMBER, float(value))

    @classmethod
    def quantity(cls, name: str, source_text: str, value: float, unit: str) -> SlotValue:
        return cls(name, source_text, SlotKind.QUANTITY, Quantity(float(value), unit))

    @classmethod
    def unit(cls, name: str, source_text: str, unit: str) -> SlotValue:
        return cls(name, source_text, SlotKind.UNIT, unit)

    @classmethod
    def date(cls, name: str, source_text: str, value: dt.date) -> SlotValue:
        return cls(name, source_text, SlotKind.DATE, value)

    @classmethod
    def date_time(cls, name: str, source_text: str, value: dt.datetime) -> SlotValue:
        return cls(name, source_text, SlotKind.DATE_TIME, value)

    @classmethod
    def duration(cls, name: str, source_text: str, value: dt.timedelta) -> SlotValue:
        return cls(name, source_text, SlotKind.DURATION, value)

    @classmethod
    def items(cls, name: str, source_text: str, values: tuple[str, ...] | list[str]) -> SlotValue:
        return cls(name, source_text, SlotKind.ITEMS, tuple(values))

    @classmethod
    def name_value(cls, name: str, source_text: str, value: str) -> SlotValue:
        return cls(name, source_text, SlotKind.NAME, value)

    @classmethod
    def text(cls, name: str, source_text: str, value: str) -> SlotValue:
        return cls(name, source_text, SlotKind.TEXT, value)
