"""The slots of an intent that has no reader of its own: an intent a tool declares (a new built-in,
an MCP server's tool) is understood without a change here, and the tool's declaration maps these
slots to its arguments.

- ``percent``: the first number written as a percentage ("20%", "20 percent", "twenty per cent");
- ``number``, ``number_2``, ...: the other numbers, in the order they are written ("$42.50" is 42.5,
  "1,200" is 1200, "eighty five" is 85).

The names are part of the contract with tool declarations: docs/tools.md lists them.
"""

from __future__ import annotations

import re
from typing import Final

from hivemesh.language.slots.values import SlotValue

# At most this many ``number`` slots: a request names a few numbers, not a table.
MAX_NUMBERS: Final = 8

# A number: not inside a word or another number (the digits of "3d6", "v2" are not amounts).
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.]*[A-Za-z])(?!\.\d)")
_PERCENT = re.compile(r"\s*(?:%|percent\b|per\s+cent\b|pct\b)", re.IGNORECASE)


def generic_slots(prepared: str) -> list[SlotValue]:
    """The generic slots of ``prepared`` (the request with numbers as digits)."""
    slots: list[SlotValue] = []
    numbers = 0
    percent_found = False
    for match in _NUMBER.finditer(prepared):
        value = float(match.group())
        sign = _PERCENT.match(prepared, match.end())
        if sign is not None:
            if not percent_found:
                percent_found = True
                slots.append(SlotValue.number("percent", prepared[match.start() : sign.end()], value))
            continue
        if numbers == MAX_NUMBERS:
            continue
        numbers += 1
        name = "number" if numbers == 1 else f"number_{numbers}"
        slots.append(SlotValue.number(name, match.group(), value))
    return slots


def is_generic(name: str) -> bool:
    """Whether ``name`` is one of the generic slots (``percent``, ``number``, ``number_2``...)."""
    if name in ("percent", "number"):
        return True
    prefix, _, count = name.partition("_")
    return prefix == "number" and count.isdigit() and 2 <= int(count) <= MAX_NUMBERS
