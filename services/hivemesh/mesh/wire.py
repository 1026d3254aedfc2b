"""Why a request's bytes do not decode, named by field: the protobuf runtime only says that parsing
failed. Only requests that failed to decode are read again here, so valid traffic pays nothing.

The walk follows the wire format with the message's descriptor and reports the first string field
that is not valid UTF-8, or the outermost field under which messages nest deeper than the runtime
accepts. Paths read like protovalidate's (``scope.user_id``, ``turns[2].text``), and a Struct reads
like the JSON it holds (``value.profile.name``). The walk looks at a bounded number of fields; past
that, or when the bytes are not protobuf at all, no field is named.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from hivemesh.mesh.errors import DETAIL_LIMIT, QUOTE_LIMIT, clip

# Nested messages the protobuf runtime decodes (upb's default); a Struct spends three per JSON level.
MAX_NESTING = 100
# Fields looked at before giving up on naming one: the walk stays cheaper than a normal request.
MAX_FIELDS = 10_000

_STRUCT = "google.protobuf.Struct"
_VALUE = "google.protobuf.Value"
_LIST_VALUE = "google.protobuf.ListValue"


@dataclass(frozen=True)
class Flaw:
    """What is wrong and where: ``field`` is a path, or empty when no field can be named."""

    field: str
    description: str


class _Malformed(Exception):
    """The bytes break the wire format itself (a truncated varint, a length past the end)."""


class _TooLong(Exception):
    """The walk reached MAX_FIELDS."""


def find_flaw(descriptor: Descriptor, data: bytes) -> Flaw | None:
    """The first reason ``data`` is not a valid ``descriptor`` message that a field can be blamed
    for, or None (not protobuf, too large to walk, or no flaw this walk knows)."""
    try:
        return _Walk(data).message(descriptor, 0, len(data), _Place("", "", 0))
    except (_Malformed, _TooLong):
        return None


@dataclass(frozen=True)
class _Place:
    """Where a message is: its path, the top-level field it is under, how deep it is nested."""

    path: str
    root: str
    depth: int

    def below(self, path: str) -> _Place:
        return _Place(path, self.root or path, self.depth + 1)


_DEEP = f"nests messages more than {MAX_NESTING} levels deep (a Struct spends 3 per level)"


class _Walk:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._fields = 0

    def message(self, descriptor: Descriptor, start: int, end: int, place: _Place) -> Flaw | None:
        """Walk the ``descriptor`` message in ``data[start:end]``."""
        seen: dict[int, int] = {}
        for number, span in self._length_delimited(start, end):
            field = descriptor.fields_by_number.get(number)
            if field is None:
                continue  # unknown fields are kept as bytes, never decoded
            index = seen.get(number, 0)
            seen[number] = index + 1
            flaw = self._field(descriptor, field, index, span, place)
            if flaw is not None:
                return flaw
        return None

    def _field(
        self, parent: Descriptor, field: FieldDescriptor, index: int, span: tuple[int, int], place: _Place
    ) -> Flaw | None:
        path = _path(parent, field, index, place.path)
        if field.type == FieldDescriptor.TYPE_STRING:
            return None if self._utf8(span) else Flaw(path, "is not valid UTF-8")
        child = field.message_type
        if field.type != FieldDescriptor.TYPE_MESSAGE or child is None:
            return None  # bytes, or a packed run of numbers
        inner = place.below(path)
        if inner.depth > MAX_NESTING:
            return Flaw(inner.root, _DEEP)
        if child.GetOptions().map_entry:
            return self._map_entry(parent, child, span, inner)
        return self.message(child, *span, inner)

    def _map_entry(
        self, parent: Descriptor, entry: Descriptor, span: tuple[int, int], place: _Place
    ) -> Flaw | None:
        """A map entry: its key names where its value is (``labels['k']``, or ``value.k`` in a
        Struct); a key that is not UTF-8 is the flaw itself."""
        key_field, value_field = entry.fields_by_number[1], entry.fields_by_number[2]
        key, value = (0, 0), None
        for number, found in self._length_delimited(*span):
            if number == 1:
                key = found
            elif number == 2:
                value = found
        if key_field.type == FieldDescriptor.TYPE_STRING and not self._utf8(key):
            return Flaw(place.path, "has a key that is not valid UTF-8")
        if value is None:
            return None
        # Keys are the sender's: clipped, so that paths stay short however long or deep they are.
        name = clip(self._data[key[0] : key[1]].decode("utf-8", "replace"), QUOTE_LIMIT)
        where = f"{place.path}.{name}" if parent.full_name == _STRUCT else f"{place.path}[{name!r}]"
        path = clip(where, DETAIL_LIMIT)
        if value_field.type == FieldDescriptor.TYPE_STRING:
            return None if self._utf8(value) else Flaw(path, "is not valid UTF-8")
        child = value_field.message_type
        if value_field.type != FieldDescriptor.TYPE_MESSAGE or child is None:
            return None
        inner = _Place(path, place.root, place.depth + 1)
        if inner.depth > MAX_NESTING:
            return Flaw(inner.root, _DEEP)
        return self.message(child, *value, inner)

    def _length_delimited(self, start: int, end: int) -> Iterator[tuple[int, tuple[int, int]]]:
        """The field number and byte span of each length-delimited field in ``data[start:end]``;
        other fields are stepped over."""
        position = start
        while position < end:
            self._fields += 1
            if self._fields > MAX_FIELDS:
                raise _TooLong
            tag, position = self._varint(position, end)
            wire_type = tag & 7
            if wire_type == 0:
                _, position = self._varint(position, end)
            elif wire_type == 1:
                position += 8
            elif wire_type == 5:
                position += 4
            elif wire_type == 2:
                length, position = self._varint(position, end)
                if position + length > end:
                    raise _Malformed
                yield tag >> 3, (position, position + length)
                position += length
            else:  # groups (not in proto3) and wire types that do not exist
                raise _Malformed
            if position > end:
                raise _Malformed

    def _varint(self, position: int, end: int) -> tuple[int, int]:
        result = shift = 0
        while True:
            if position >= end or shift > 63:
                raise _Malformed
            byte = self._data[position]
            position += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result, position
            shift += 7

    def _utf8(self, span: tuple[int, int]) -> bool:
        try:
            self._data[span[0] : span[1]].decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True


def _path(parent: Descriptor, field: FieldDescriptor, index: int, path: str) -> str:
    """Where ``field`` of ``parent`` is, below ``path``. A Struct's map, a Value's kind and a
    ListValue's list add nothing of their own, so the path follows the JSON."""
    name = parent.full_name
    if name in (_STRUCT, _VALUE):
        return path
    if name == _LIST_VALUE:
        return f"{path}[{index}]"
    is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
    label = f"{field.name}[{index}]" if field.is_repeated and not is_map else field.name
    return f"{path}.{label}" if path else label
