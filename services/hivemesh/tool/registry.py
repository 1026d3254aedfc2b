"""The tools a service offers: its own (built-ins, added in code) and those of its sources (MCP
servers), looked up by name and paged through in name order.

The whole set is the catalogue, named by a version: a hash of every spec. It changes whenever a tool
is added or removed or a spec changes (a source's tools come and go at run time), and it is the same
on every replica and after every restart that serves the same tools, so a caller holding a copy can
tell from the version alone whether its copy is current."""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jsonschema.protocols import Validator

from hivemesh.mesh.errors import InvalidArgument, NotFound
from hivemesh.tool.arguments import compile_schema
from hivemesh.tool.capability import check_intents
from hivemesh.tool.model import Tool, ToolSource, ToolSpec

DEFAULT_PAGE_SIZE = 100


@dataclass(frozen=True)
class Catalogue:
    """Every tool's spec, in name order, and the version that names exactly this set."""

    specs: tuple[ToolSpec, ...]
    version: str


@dataclass(frozen=True)
class Page:
    specs: Sequence[ToolSpec]
    next_page_token: str
    catalogue_version: str
    # The caller's cached version is current: no specs, no token.
    unchanged: bool = False


class Registry:
    def __init__(self, tools: Iterable[Tool] = (), sources: Iterable[ToolSource] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self._sources = list(sources)
        # Compiled once per schema object: MCP tools may be replaced by a restarted server.
        self._validators: dict[str, tuple[object, Validator]] = {}
        # The last catalogue built, reused while the specs are the same objects (or equal).
        self._catalogue = Catalogue((), catalogue_version(()))
        for item in tools:
            self.add(item)

    def add(self, item: Tool) -> None:
        name = item.spec.name
        if name in self._tools:
            raise ValueError(f"two tools are named {name!r}")
        compile_schema(item.spec.arguments_schema)  # a bad schema fails at start-up, not per call
        check_intents(item.spec)
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
                f"no tool named {name!r} is installed",
                reason="TOOL_NOT_FOUND",
                metadata={"tool": name, "catalogue_version": self.catalogue().version},
            )
        return found

    def catalogue(self) -> Catalogue:
        """The current catalogue; hashed again only when a spec was added, removed or replaced."""
        tools = self.all()
        specs = tuple(tools[name].spec for name in sorted(tools))
        known = self._catalogue
        if len(specs) != len(known.specs) or any(
            a is not b and a != b for a, b in zip(specs, known.specs, strict=True)
        ):
            self._catalogue = Catalogue(specs, catalogue_version(specs))
        return self._catalogue

    def validator(self, item: Tool) -> Validator:
        schema = item.spec.arguments_schema
        cached = self._validators.get(item.spec.name)
        if cached is not None and cached[0] is schema:
            return cached[1]
        compiled = compile_schema(schema)
        self._validators[item.spec.name] = (schema, compiled)
        return compiled

    def page(self, page_size: int, page_token: str, cached_version: str = "") -> Page:
        """Up to ``page_size`` specs after ``page_token``; nothing but ``unchanged`` when the caller's
        ``cached_version`` is current (a question about the first page only)."""
        if cached_version and page_token:
            raise InvalidArgument.field(
                "cached_catalogue_version", "applies to the first page only; leave it empty with a page_token"
            )
        catalogue = self.catalogue()
        if cached_version == catalogue.version:
            return Page((), "", catalogue.version, unchanged=True)
        size = page_size or DEFAULT_PAGE_SIZE
        after = _decode_token(page_token)
        start = bisect.bisect_right([s.name for s in catalogue.specs], after)
        chosen = catalogue.specs[start : start + size]
        more = start + size < len(catalogue.specs)
        return Page(chosen, _encode_token(chosen[-1].name) if more else "", catalogue.version)


def catalogue_version(specs: Iterable[ToolSpec]) -> str:
    """128 bits of a SHA-256 over every spec in canonical JSON: equal exactly when the specs are."""
    digest = hashlib.sha256()
    for spec in specs:
        fields: dict[str, Any] = {
            "name": spec.name,
            "description": spec.description,
            "arguments_schema": spec.arguments_schema,
            "result_schema": spec.result_schema,
            "side_effects": spec.side_effects,
            "timeout_s": spec.timeout_s,
            "max_concurrency": spec.max_concurrency,
            "source": spec.source,
        }
        if spec.intents:  # absent otherwise, so a catalogue without declarations keeps its version
            fields["intents"] = [serves.as_json() for serves in spec.intents]
        digest.update(json.dumps(fields, sort_keys=True, separators=(",", ":"), default=_plain).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:32]


def _plain(value: Any) -> Any:
    """Schemas are JSON, but may come as other mappings and sequences (read-only views, tuples)."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _encode_token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


def _decode_token(token: str) -> str:
    if not token:
        return ""
    try:
        padded = token + "=" * (-len(token) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except ValueError:  # not base64, not even ASCII, or not UTF-8 once decoded
        raise InvalidArgument.field("page_token", "is not a token this service returned") from None
