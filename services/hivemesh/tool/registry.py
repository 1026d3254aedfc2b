"""The tools a service offers: its own (built-ins, added in code) and those of its sources (MCP
servers), looked up by name and paged through in name order."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from jsonschema.protocols import Validator

from hivemesh.mesh.errors import InvalidArgument, NotFound
from hivemesh.tool.arguments import compile_schema
from hivemesh.tool.model import Tool, ToolSource, ToolSpec

DEFAULT_PAGE_SIZE = 100


@dataclass(frozen=True)
class Page:
    specs: Sequence[ToolSpec]
    next_page_token: str


class Registry:
    def __init__(self, tools: Iterable[Tool] = (), sources: Iterable[ToolSource] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self._sources = list(sources)
        # Compiled once per schema object: MCP tools may be replaced by a restarted server.
        self._validators: dict[str, tuple[object, Validator]] = {}
        for item in tools:
            self.add(item)

    def add(self, item: Tool) -> None:
        name = item.spec.name
        if name in self._tools:
            raise ValueError(f"two tools are named {name!r}")
        compile_schema(item.spec.arguments_schema)  # a bad schema fails at start-up, not per call
        self._tools[name] = item

    def add_source(self, source: ToolSource) -> None:
        self._sources.append(source)

    def all(self) -> dict[str, Tool]:
        merged: dict[str, Tool] = {}
        for source in self._sources:
            for item in source.tools():
                merged.setdefault(item.spec.name, item)
        merged.update(self._tools)  # a built-in wins over an MCP tool of the same name
        return merged

    def get(self, name: str) -> Tool:
        found = self._tools.get(name)
        if found is None:
            found = next((t for s in self._sources for t in s.tools() if t.spec.name == name), None)
        if found is None:
            raise NotFound(
                f"no tool named {name!r} is installed", reason="TOOL_NOT_FOUND", metadata={"tool": name}
            )
        return found

    def validator(self, item: Tool) -> Validator:
        schema = item.spec.arguments_schema
        cached = self._validators.get(item.spec.name)
        if cached is not None and cached[0] is schema:
            return cached[1]
        compiled = compile_schema(schema)
        self._validators[item.spec.name] = (schema, compiled)
        return compiled

    def page(self, page_size: int, page_token: str) -> Page:
        size = page_size or DEFAULT_PAGE_SIZE
        after = _decode_token(page_token)
        names = sorted(n for n in self.all() if n > after)
        tools = self.all()
        chosen = names[:size]
        more = len(names) > size
        return Page([tools[n].spec for n in chosen], _encode_token(chosen[-1]) if more else "")


def _encode_token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


def _decode_token(token: str) -> str:
    if not token:
        return ""
    try:
        padded = token + "=" * (-len(token) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidArgument.field("page_token", "is not a token this service returned") from None
