"""Slot extraction: typed values read from a request for the intent it was understood as.

``extract_slots(text, intent, now=...)`` returns ``SlotValue``s, ``to_proto`` turns them into
``hivemesh.language.v1.Slot`` messages and ``split_compound`` splits a request that asks for
several things. Pure functions of their arguments: no I/O, no model.
"""

from __future__ import annotations

from hivemesh.language.slots.compound import split_compound
from hivemesh.language.slots.extract import extract_slots
from hivemesh.language.slots.proto import to_proto
from hivemesh.language.slots.values import Quantity, SlotData, SlotKind, SlotValue

__all__ = ["Quantity", "SlotData", "SlotKind", "SlotValue", "extract_slots", "split_compound", "to_proto"]
