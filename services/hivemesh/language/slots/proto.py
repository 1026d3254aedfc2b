"""Slot values to their protobuf messages (the one place this package touches gen/)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from hivemesh.language.slots.values import Quantity, SlotKind, SlotValue
from hivemesh.language.v1 import language_service_pb2 as pb


def slot_to_proto(slot: SlotValue) -> pb.Slot:
    message = pb.Slot(name=slot.name, source_text=slot.source_text)
    value = slot.value
    match slot.kind:
        case SlotKind.NUMBER:
            assert isinstance(value, float)
            message.number = value
        case SlotKind.QUANTITY:
            assert isinstance(value, Quantity)
            message.quantity.CopyFrom(pb.Quantity(value=value.value, unit=value.unit))
        case SlotKind.UNIT:
            assert isinstance(value, str)
            message.unit = value
        case SlotKind.DATE:
            assert isinstance(value, dt.date)
            message.date.CopyFrom(pb.CalendarDate(year=value.year, month=value.month, day=value.day))
        case SlotKind.DATE_TIME:
            assert isinstance(value, dt.datetime)
            message.date_time.FromDatetime(value.astimezone(dt.UTC))
        case SlotKind.DURATION:
            assert isinstance(value, dt.timedelta)
            message.duration.FromTimedelta(value)
        case SlotKind.ITEMS:
            assert isinstance(value, tuple)
            message.items.values.extend(value)
        case SlotKind.NAME:
            assert isinstance(value, str)
            message.name_value = value
        case SlotKind.TEXT:
            assert isinstance(value, str)
            message.text = value
    return message


def to_proto(slots: Sequence[SlotValue]) -> list[pb.Slot]:
    """One ``Slot`` message per value, in order."""
    return [slot_to_proto(slot) for slot in slots]
