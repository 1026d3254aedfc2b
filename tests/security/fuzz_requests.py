"""Hypothesis strategies for the request of any RPC, derived from its message descriptor alone.

A request comes in one of three shapes:

- valid: every field keeps to the contract's protovalidate rules, and fields named like something
  the mesh already holds (``task_id``, ``tool_name``, ``kind``...) take its values, so that calls
  get past validation into the services;
- mixed: each field valid, or just past its rules, or at the edge of its type (huge and odd text,
  integers at their bounds, NaN and infinities, enum numbers nothing defines, timestamps and
  durations out of range, Structs nested deep);
- bytes no protobuf library writes: cut short, bit-flipped, random, invalid UTF-8 in a string
  field at any depth, messages nested past any parser's limit, unknown fields, wrong wire types.

A new field or a new RPC is covered as soon as it is in the descriptors.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from buf.validate import validate_pb2
from google.protobuf import duration_pb2, message_factory, struct_pb2, text_format, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

# How deep generated messages go; deeper fields are left unset (bytes go much deeper).
MAX_DEPTH = 3
# Elements of a generated repeated field or map, short of the "one past the limit" case.
MAX_ITEMS = 3

_STRUCT = "google.protobuf.Struct"
_VALUE = "google.protobuf.Value"
_LIST_VALUE = "google.protobuf.ListValue"
_TIMESTAMP = "google.protobuf.Timestamp"
_DURATION = "google.protobuf.Duration"

# The ranges the well-known time types define (google/protobuf/timestamp.proto, duration.proto).
_MIN_TIMESTAMP_S = -62_135_596_800
_MAX_TIMESTAMP_S = 253_402_300_799
_MAX_DURATION_S = 315_576_000_000
_MAX_NANOS = 999_999_999

_T = FieldDescriptor
_INT_RANGES = {
    _T.TYPE_INT32: (-(2**31), 2**31 - 1),
    _T.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _T.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    _T.TYPE_INT64: (-(2**63), 2**63 - 1),
    _T.TYPE_SINT64: (-(2**63), 2**63 - 1),
    _T.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _T.TYPE_UINT32: (0, 2**32 - 1),
    _T.TYPE_FIXED32: (0, 2**32 - 1),
    _T.TYPE_UINT64: (0, 2**64 - 1),
    _T.TYPE_FIXED64: (0, 2**64 - 1),
}
# The protovalidate rules of each numeric type, by the name FieldRules gives them.
_RULES_OF_TYPE = {
    _T.TYPE_INT32: "int32",
    _T.TYPE_INT64: "int64",
    _T.TYPE_UINT32: "uint32",
    _T.TYPE_UINT64: "uint64",
    _T.TYPE_SINT32: "sint32",
    _T.TYPE_SINT64: "sint64",
    _T.TYPE_FIXED32: "fixed32",
    _T.TYPE_FIXED64: "fixed64",
    _T.TYPE_SFIXED32: "sfixed32",
    _T.TYPE_SFIXED64: "sfixed64",
    _T.TYPE_FLOAT: "float",
    _T.TYPE_DOUBLE: "double",
}

# Text a parser, a log line, a database or a terminal might take for something else.
ODD_TEXT = (
    "",
    " ",
    "\x00",
    "\n\r\t",
    "\u202e\u200b\ufeff",
    "\uffff\U0010ffff",
    "😀" * 3,
    "e\u0301" * 3,
    "%s%n%x{0}{}",
    "' OR 1=1 --",
    "../../../../etc/passwd",
    "${jndi:ldap://x}",
    "NaN",
    "-0",
    "9" * 40,
    "1e999",
    "[[[[[[[[[[",
    "((((((((((",
)
# Characters repeated to make long text: one, two, four UTF-8 bytes, and NUL.
_FILLERS = ("x", "é", "😀", "\x00")
# Bytes that are never valid UTF-8: a lone continuation, a cut sequence, an overlong encoding, a
# surrogate, a code point past U+10FFFF, bytes UTF-8 never uses.
INVALID_UTF8 = (
    b"\x80",
    b"caf\xc3",
    b"\xc0\xaf",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xff\xfe",
    b"ok\xf8",
)


@dataclass(frozen=True)
class Vocabulary:
    """What a running mesh already holds, so that valid requests name things that exist.

    ``strings``: values by field name (``task_id``, ``tool_name``, ``user_id``...), used for every
    string field so named, or by a field's full name (``hivemesh.tool.v1.ListToolsRequest.page_token``)
    for that field alone. ``tools``: each tool's arguments, used for a message that names a tool
    (``tool_name`` or ``name``) beside a Struct ``arguments``. ``keys``: Struct keys that mean
    something to a service."""

    strings: Mapping[str, Sequence[str]] = field(default_factory=dict)
    tools: Mapping[str, st.SearchStrategy[dict[str, Any]]] = field(default_factory=dict)
    keys: Sequence[str] = ()


@dataclass(frozen=True)
class Payload:
    """The bytes sent, how they were made, and the message they came from (if any)."""

    data: bytes
    kind: str
    message: Message | None = None

    def describe(self, limit: int = 400) -> str:
        shown = (
            text_format.MessageToString(self.message, as_one_line=True)
            if self.message is not None
            else self.data.hex()
        )
        text = f"{self.kind} ({len(self.data)} bytes): {shown}"
        return text if len(text) <= limit else f"{text[: limit - 40]}...({len(text) - limit + 40} more)"


def field_rules(target: FieldDescriptor) -> validate_pb2.FieldRules:
    options = target.GetOptions()
    if options.HasExtension(validate_pb2.field):
        rules: validate_pb2.FieldRules = options.Extensions[validate_pb2.field]
        return rules
    return validate_pb2.FieldRules()


def _oneof_required(descriptor: Descriptor, name: str) -> bool:
    options = descriptor.oneofs_by_name[name].GetOptions()
    return options.HasExtension(validate_pb2.oneof) and bool(options.Extensions[validate_pb2.oneof].required)


def _is_map(target: FieldDescriptor) -> bool:
    return target.message_type is not None and target.message_type.GetOptions().map_entry


def _huge_text(lengths: Sequence[int]) -> st.SearchStrategy[str]:
    return st.builds(lambda filler, n: filler * n, st.sampled_from(_FILLERS), st.sampled_from(lengths))


def _bounds(rules: Message, low: float, high: float) -> tuple[float, float]:
    """The closed range a numeric rule allows, within ``low``..``high``."""
    fields = {f.name: v for f, v in rules.ListFields()}
    if "gte" in fields:
        low = max(low, fields["gte"])
    if "gt" in fields:
        low = max(low, fields["gt"] + (1 if isinstance(fields["gt"], int) else 0))
    if "lte" in fields:
        high = min(high, fields["lte"])
    if "lt" in fields:
        high = min(high, fields["lt"] - (1 if isinstance(fields["lt"], int) else 0))
    return low, high


def json_values(keys: Sequence[str] = (), *, finite: bool = False) -> st.SearchStrategy[Any]:
    """Any JSON a Struct can hold, NaN and the infinities included unless ``finite``, sometimes
    nested deep."""
    key = st.one_of(st.sampled_from(keys), st.text(max_size=12)) if keys else st.text(max_size=12)
    numbers = st.floats(allow_nan=not finite, allow_infinity=not finite)
    leaves = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=16), st.sampled_from(ODD_TEXT))
    tree = st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=MAX_ITEMS), st.dictionaries(key, children, max_size=MAX_ITEMS)
        ),
        max_leaves=8,
    )
    return st.one_of(tree, st.builds(_nested, st.integers(1, 20)))


def json_objects(keys: Sequence[str] = (), *, finite: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    key = st.one_of(st.sampled_from(keys), st.text(max_size=12)) if keys else st.text(max_size=12)
    return st.dictionaries(key, json_values(keys, finite=finite), max_size=MAX_ITEMS)


def _nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


_QUOTED = re.compile(r'"([^"]{1,64})"')


def schema_values(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """Values a JSON schema accepts, and the examples its descriptions quote (``e.g. "km"``)."""
    kind = schema.get("type")
    examples: list[Any] = _QUOTED.findall(str(schema.get("description", ""))) if kind == "string" else []
    if "default" in schema:
        examples.append(schema["default"])
    found: st.SearchStrategy[Any]
    if kind == "object":
        properties: Mapping[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", ()))
        found = st.fixed_dictionaries(
            {k: schema_values(v) for k, v in properties.items() if k in required},
            optional={k: schema_values(v) for k, v in properties.items() if k not in required},
        )
    elif kind == "string":
        low, high = int(schema.get("minLength", 0)), int(schema.get("maxLength", 64))
        pattern = schema.get("pattern")
        found = (
            st.from_regex(pattern).filter(lambda s: low <= len(s) <= high)
            if pattern
            else st.text(min_size=low, max_size=min(high, 32))
        )
    elif kind in ("number", "integer"):
        low_n, high_n = schema.get("minimum"), schema.get("maximum")
        if kind == "integer":
            found = st.integers(
                None if low_n is None else int(low_n), None if high_n is None else int(high_n)
            ).map(float)
        else:
            above = schema.get("exclusiveMinimum")
            found = st.floats(
                above if low_n is None else low_n,
                high_n,
                exclude_min=above is not None,
                allow_nan=False,
                allow_infinity=False,
            )
    elif kind == "array":
        items = schema.get("items", {})
        low_i = int(schema.get("minItems", 0))
        found = st.lists(schema_values(items), min_size=low_i, max_size=max(low_i, MAX_ITEMS))
    elif kind == "boolean":
        found = st.booleans()
    else:
        found = json_values()
    return st.one_of(st.sampled_from(examples), found) if examples else found


class Requests:
    """Strategies for the messages of any descriptor, given what the mesh holds."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self._vocabulary = vocabulary
        self._cache: dict[tuple[str, bool, int], st.SearchStrategy[Message]] = {}

    def payloads(self, descriptor: Descriptor) -> st.SearchStrategy[Payload]:
        """What a client could send as a ``descriptor`` request: valid, mixed, or broken bytes."""
        valid = self.messages(descriptor, valid=True)
        mixed = self.messages(descriptor, valid=False)
        strings = list(paths(descriptor, lambda f: f.type == _T.TYPE_STRING))
        nestable = [(path, cycle) for path in paths(descriptor, _is_message) if (cycle := _cycle(path[-1]))]
        valid_payloads = valid.map(lambda m: Payload(m.SerializeToString(), "valid", m))
        mixed_payloads = mixed.map(lambda m: Payload(m.SerializeToString(), "mixed", m))
        # Listed more than once to be drawn more often: a valid request reaches furthest.
        kinds = [
            valid_payloads,
            valid_payloads,
            valid_payloads,
            mixed_payloads,
            mixed_payloads,
            st.builds(_truncated, mixed, st.integers(0, 2**16)),
            st.builds(
                _flipped, mixed, st.lists(st.tuples(st.integers(0, 2**16), st.integers(1, 255)), max_size=4)
            ),
            st.binary(max_size=128).map(lambda b: Payload(b, "random bytes")),
            st.builds(_odd_fields, valid, st.lists(_odd_field(), min_size=1, max_size=4)),
        ]
        if strings:
            kinds.append(
                st.builds(_invalid_utf8, valid, st.sampled_from(strings), st.sampled_from(INVALID_UTF8))
            )
        if nestable:
            levels = st.sampled_from([30, 33, 34, 50, 101, 1000])
            kinds.append(st.builds(_deep, valid, st.sampled_from(nestable), levels))
        return st.one_of(kinds)

    def messages(self, descriptor: Descriptor, *, valid: bool, depth: int = 0) -> st.SearchStrategy[Message]:
        key = (descriptor.full_name, valid, depth)
        if key not in self._cache:
            self._cache[key] = st.deferred(lambda: self._message(descriptor, valid=valid, depth=depth))
        return self._cache[key]

    def _message(self, descriptor: Descriptor, *, valid: bool, depth: int) -> st.SearchStrategy[Message]:
        name = descriptor.full_name
        if name in (_TIMESTAMP, _DURATION):
            return self._time(descriptor, valid=valid)
        keys = self._vocabulary.keys
        if name == _STRUCT:
            return json_objects(keys, finite=valid).map(_struct)
        if name == _VALUE:
            return json_values(keys, finite=valid).map(_value)
        if name == _LIST_VALUE:
            return st.lists(json_values(keys, finite=valid), max_size=MAX_ITEMS).map(
                lambda items: _value(items).list_value
            )
        return self._fields(descriptor, valid=valid, depth=depth)

    def _fields(self, descriptor: Descriptor, *, valid: bool, depth: int) -> st.SearchStrategy[Message]:
        make = message_factory.GetMessageClass(descriptor)
        tool = self._tool_fields(descriptor)

        @st.composite
        def build(draw: st.DrawFn) -> Message:
            message = make()
            chosen: dict[str, FieldDescriptor | None] = {}
            for oneof in descriptor.oneofs:
                options: list[FieldDescriptor | None] = list(oneof.fields)
                if not (valid and _oneof_required(descriptor, oneof.name)):
                    options.insert(0, None)
                chosen[oneof.name] = draw(st.sampled_from(options))
            for target in descriptor.fields:
                member_of = target.containing_oneof
                if member_of is not None and chosen.get(member_of.name) is not target:
                    continue
                if target.message_type is not None and depth >= MAX_DEPTH:
                    continue
                if not (valid or member_of is not None) and not draw(st.integers(0, 3)):
                    continue  # a quarter of the fields of a mixed message are left unset
                _assign(message, target, draw(self._value(target, valid=valid, depth=depth)))
            if tool is not None and (valid or draw(st.booleans())) and self._vocabulary.tools:
                name_field, arguments_field = tool
                name = draw(st.sampled_from(sorted(self._vocabulary.tools)))
                setattr(message, name_field.name, name)
                getattr(message, arguments_field.name).CopyFrom(_struct(draw(self._vocabulary.tools[name])))
            return message

        return build()

    @staticmethod
    def _tool_fields(descriptor: Descriptor) -> tuple[FieldDescriptor, FieldDescriptor] | None:
        """A string naming a tool and the Struct of its arguments, when the message has both."""
        arguments = descriptor.fields_by_name.get("arguments")
        if arguments is None or arguments.message_type is None or arguments.message_type.full_name != _STRUCT:
            return None
        for name in ("tool_name", "name"):
            found = descriptor.fields_by_name.get(name)
            if found is not None and found.type == _T.TYPE_STRING:
                return found, arguments
        return None

    def _value(self, target: FieldDescriptor, *, valid: bool, depth: int) -> st.SearchStrategy[Any]:
        rules = field_rules(target)
        if _is_map(target):
            entry = target.message_type
            assert entry is not None
            keys = self._single(entry.fields_by_name["key"], rules.map.keys, valid=valid, depth=depth + 1)
            values = self._single(
                entry.fields_by_name["value"], rules.map.values, valid=valid, depth=depth + 1
            )
            some = st.dictionaries(keys, values, max_size=MAX_ITEMS)
            if valid or entry.fields_by_name["key"].type != _T.TYPE_STRING:
                return some
            many = rules.map.max_pairs + 1 if rules.map.HasField("max_pairs") else 300
            small = self._valid(entry.fields_by_name["value"], rules.map.values, depth + 1)
            return st.one_of(some, st.builds(lambda v: {f"k{i}": v for i in range(many)}, small))
        if target.is_repeated:
            item = self._single(target, rules.repeated.items, valid=valid, depth=depth)
            low = rules.repeated.min_items
            lists = st.lists(item, min_size=low, max_size=max(low, MAX_ITEMS))
            if valid:
                return lists
            # One more item than the contract allows: small ones, or the request outgrows any limit.
            limit = rules.repeated.max_items + 1 if rules.repeated.HasField("max_items") else 300
            small = self._valid(target, rules.repeated.items, depth)
            return st.one_of(lists, st.builds(lambda one: [one] * limit, small))
        return self._single(target, rules, valid=valid, depth=depth)

    def _single(
        self, target: FieldDescriptor, rules: validate_pb2.FieldRules, *, valid: bool, depth: int
    ) -> st.SearchStrategy[Any]:
        good = self._valid(target, rules, depth)
        if valid:
            return good
        return st.one_of(good, self._wild(target, rules, depth))

    def _valid(
        self, target: FieldDescriptor, rules: validate_pb2.FieldRules, depth: int
    ) -> st.SearchStrategy[Any]:
        kind = target.type
        known = self._known(target)
        if kind == _T.TYPE_STRING:
            text = rules.string
            low, high = text.min_len, text.max_len if text.HasField("max_len") else 64
            if known:
                return st.sampled_from(known)
            if text.pattern:
                return st.from_regex(text.pattern, fullmatch=True).filter(lambda s: low <= len(s) <= high)
            return st.text(min_size=low, max_size=max(low, min(high, 32)))
        if kind == _T.TYPE_BYTES:
            return st.binary(max_size=32)
        if kind == _T.TYPE_BOOL:
            return st.just(rules.bool.const) if rules.bool.HasField("const") else st.booleans()
        if kind == _T.TYPE_ENUM:
            assert target.enum_type is not None
            allowed = [v.number for v in target.enum_type.values if v.number not in rules.enum.not_in]
            return st.sampled_from(allowed or [0])
        if kind in _INT_RANGES:
            low_i, high_i = _INT_RANGES[kind]
            name = _RULES_OF_TYPE[kind]
            if rules.WhichOneof("type") == name:
                low_i, high_i = (int(b) for b in _bounds(getattr(rules, name), low_i, high_i))
            return st.integers(max(low_i, -1000), min(high_i, 1000)) if low_i <= 1000 else st.just(low_i)
        if kind in (_T.TYPE_FLOAT, _T.TYPE_DOUBLE):
            low_f, high_f = -1e6, 1e6
            name = _RULES_OF_TYPE[kind]
            if rules.WhichOneof("type") == name:
                low_f, high_f = _bounds(getattr(rules, name), low_f, high_f)
            return st.floats(low_f, high_f, width=32 if kind == _T.TYPE_FLOAT else 64)
        message_type = target.message_type
        assert message_type is not None
        if message_type.full_name == _DURATION and rules.duration.HasField("gt"):
            return st.builds(_duration, st.integers(1, 86_400), st.integers(0, _MAX_NANOS))
        return self.messages(message_type, valid=True, depth=depth + 1)

    def _wild(
        self, target: FieldDescriptor, rules: validate_pb2.FieldRules, depth: int
    ) -> st.SearchStrategy[Any]:
        kind = target.type
        if kind == _T.TYPE_STRING:
            high = rules.string.max_len if rules.string.HasField("max_len") else 16_384
            wild = [
                st.sampled_from(ODD_TEXT),
                st.text(max_size=48),
                _huge_text([high, high + 1, 65_537, 300_000]),
            ]
            known = self._known(target)
            if known:
                # Something the service made itself, altered: a page token with a byte changed.
                wild.append(
                    st.builds(_altered, st.sampled_from(known), st.integers(0, 2**16), st.text(max_size=3))
                )
            return st.one_of(wild)
        if kind == _T.TYPE_BYTES:
            return st.one_of(st.binary(max_size=64), st.builds(bytes, st.sampled_from([65_537, 300_000])))
        if kind == _T.TYPE_ENUM:
            return st.integers(-(2**31), 2**31 - 1)
        if kind in _INT_RANGES:
            low, high = _INT_RANGES[kind]
            return st.one_of(st.integers(low, high), st.sampled_from(sorted({low, high, 0, max(low, -1), 1})))
        if kind in (_T.TYPE_FLOAT, _T.TYPE_DOUBLE):
            return st.floats(width=32 if kind == _T.TYPE_FLOAT else 64)
        if kind == _T.TYPE_BOOL:
            return st.booleans()
        message_type = target.message_type
        assert message_type is not None
        return self.messages(message_type, valid=False, depth=depth + 1)

    def _known(self, target: FieldDescriptor) -> Sequence[str]:
        strings = self._vocabulary.strings
        return strings.get(target.full_name) or strings.get(target.name) or ()

    @staticmethod
    def _time(descriptor: Descriptor, *, valid: bool) -> st.SearchStrategy[Message]:
        is_timestamp = descriptor.full_name == _TIMESTAMP
        make = _timestamp if is_timestamp else _duration
        seconds = st.integers(_MIN_TIMESTAMP_S, _MAX_TIMESTAMP_S) if is_timestamp else st.integers(0, 86_400)
        nanos = st.integers(0, _MAX_NANOS)
        if not valid:
            seconds = st.one_of(
                seconds,
                st.sampled_from([-(2**63), 2**63 - 1, _MIN_TIMESTAMP_S - 1, _MAX_TIMESTAMP_S + 1, -1]),
                st.sampled_from([-_MAX_DURATION_S - 1, _MAX_DURATION_S + 1, -_MAX_DURATION_S]),
            )
            nanos = st.one_of(nanos, st.sampled_from([-1, _MAX_NANOS + 1, -(2**31), 2**31 - 1]))
        return st.builds(make, seconds, nanos)


def _is_message(target: FieldDescriptor) -> bool:
    return target.message_type is not None


def _assign(message: Message, target: FieldDescriptor, value: Any) -> None:
    if _is_map(target):
        entries = getattr(message, target.name)
        for key, item in value.items():
            if isinstance(item, Message):
                entries[key].CopyFrom(item)
            else:
                entries[key] = item
    elif target.is_repeated:
        getattr(message, target.name).extend(value)
    elif isinstance(value, Message):
        getattr(message, target.name).CopyFrom(value)
    else:
        setattr(message, target.name, value)


def _altered(text: str, position: int, replacement: str) -> str:
    """``text`` with the character at ``position`` replaced (by nothing, or by up to three)."""
    at = position % (len(text) + 1)
    return text[:at] + replacement + text[at + 1 :]


def _timestamp(seconds: int, nanos: int) -> Message:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def _duration(seconds: int, nanos: int) -> Message:
    return duration_pb2.Duration(seconds=seconds, nanos=nanos)


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


def _value(value: Any) -> struct_pb2.Value:
    holder = _struct({"v": value})
    return holder.fields["v"]


Path = tuple[FieldDescriptor, ...]


def paths(
    descriptor: Descriptor, wanted: Callable[[FieldDescriptor], bool], limit: int = 5
) -> Iterator[Path]:
    """Every path of fields from ``descriptor`` (through messages, maps and the well-known types,
    at most ``limit`` long) that ends in a field ``wanted`` accepts."""

    def walk(current: Descriptor, prefix: Path) -> Iterator[Path]:
        for target in current.fields:
            path = (*prefix, target)
            if wanted(target):
                yield path
            if target.message_type is not None and len(path) < limit:
                yield from walk(target.message_type, path)

    yield from walk(descriptor, ())


def _cycle(target: FieldDescriptor) -> Path:
    """A path of fields that leads from ``target``'s message type back to it (``Struct`` ->
    ``fields`` -> ``value`` -> ``struct_value``), empty when the type cannot hold itself."""
    start = target.message_type
    if start is None:
        return ()
    for path in paths(start, lambda f: f.message_type is not None, limit=3):
        if path[-1].message_type is not None and path[-1].message_type.full_name == start.full_name:
            return path
    return ()


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def length_delimited(number: int, payload: bytes) -> bytes:
    """A length-delimited field (a string, bytes or a message), as the wire format writes it."""
    return tag(number, 2) + varint(len(payload)) + payload


def wrap(path: Path, payload: bytes) -> bytes:
    """``payload`` as the value of the last field of ``path``, inside the messages before it.
    Appended to a request, it merges into the fields on the way (a repeated one gains an item)."""
    for target in reversed(path):
        payload = length_delimited(target.number, payload)
    return payload


def _truncated(message: Message, cut: int) -> Payload:
    data = message.SerializeToString()
    return Payload(data[: cut % (len(data) + 1)] if data else b"\x0a", "cut short", message)


def _flipped(message: Message, flips: list[tuple[int, int]]) -> Payload:
    data = bytearray(message.SerializeToString() or b"\x08\x01")
    for position, mask in flips:
        data[position % len(data)] ^= mask
    return Payload(bytes(data), "bits flipped", message)


@st.composite
def _odd_field(draw: st.DrawFn) -> bytes:
    """A field no contract declares, or one with a wire type or a length that does not exist."""
    number = draw(st.one_of(st.integers(0, 20), st.sampled_from([2**29 - 1, 19_000, 2**29])))
    wire_type = draw(st.integers(0, 7))
    body = draw(st.binary(max_size=16))
    if wire_type == 2 and draw(st.booleans()):
        return tag(number, 2) + varint(draw(st.sampled_from([len(body), 2**31, 2**63]))) + body
    return tag(number, wire_type) + body


def _odd_fields(message: Message, fields: list[bytes]) -> Payload:
    return Payload(message.SerializeToString() + b"".join(fields), "odd fields", message)


def _invalid_utf8(message: Message, path: Path, text: bytes) -> Payload:
    names = ".".join(f.name for f in path)
    return Payload(
        message.SerializeToString() + wrap(path, text), f"invalid UTF-8 {text!r} in {names}", message
    )


def _deep(message: Message, where: tuple[Path, Path], levels: int) -> Payload:
    path, cycle = where
    inner = b""
    for _ in range(levels):
        inner = wrap(cycle, inner)
    names = ".".join(f.name for f in path)
    return Payload(message.SerializeToString() + wrap(path, inner), f"{names} nested {levels} times", message)
