"""MCP servers to attach, read from the JSON file named by ``HIVEMESH_MCP_SERVERS``::

    {"servers": {
        "files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/srv"],
                  "env": {"LOG_LEVEL": "warn"}, "timeout_s": 30, "max_concurrency": 4},
        "search": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer ..."}}
    }}

``mcpServers`` is accepted in place of ``servers`` (the layout desktop MCP clients use).

A server's ``intents`` declare which of its tools serve which intents, as a built-in's ``serves=``
does (an MCP server knows nothing of hivemesh's intents)::

    "intents": {"add": [{"intent": "sum", "arguments": {"a": {"slot": "number"}, "b": {"slot": "number_2"}},
                         "reply": "{a} plus {b} is {result}"}]}
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hivemesh.mesh.config import ConfigError
from hivemesh.tool.model import Fill, Serves, SlotPart

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class McpServerConfig:
    name: str
    # A stdio server: the command and its arguments, environment and working directory.
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    # A streamable HTTP server: its URL and extra headers.
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # Longest one call of any of its tools may run (the caller's deadline may cut it shorter).
    timeout_s: float = 30.0
    # Most calls of each of its tools at once.
    max_concurrency: int = 8
    # Longest the server may take to start and list its tools.
    startup_timeout_s: float = 15.0
    # First pause before restarting a server that exited; it doubles up to max_restart_backoff_s.
    restart_backoff_s: float = 0.5
    max_restart_backoff_s: float = 30.0
    # The intents its tools serve, by the tool's name on the server (without the server's prefix).
    intents: Mapping[str, tuple[Serves, ...]] = field(default_factory=dict)


def load_servers(path: Path) -> tuple[McpServerConfig, ...]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"HIVEMESH_MCP_SERVERS: cannot read {path}: {exc}") from None
    servers = data.get("servers", data.get("mcpServers")) if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise ConfigError(f"HIVEMESH_MCP_SERVERS: {path} needs an object 'servers' of named servers")
    return tuple(parse_server(name, spec) for name, spec in sorted(servers.items()))


def parse_server(name: str, spec: Any) -> McpServerConfig:
    where = f"HIVEMESH_MCP_SERVERS: server {name!r}"
    if not _NAME.match(name):
        raise ConfigError(f"{where}: names are letters, digits, '-' and '_', starting with a letter")
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} must be an object")
    command, url = spec.get("command"), spec.get("url")
    if (command is None) == (url is None):
        raise ConfigError(f"{where} needs exactly one of 'command' (stdio) or 'url' (streamable HTTP)")
    try:
        config = McpServerConfig(
            name=name,
            command=str(command) if command is not None else None,
            args=tuple(str(a) for a in spec.get("args", [])),
            env={str(k): str(v) for k, v in spec.get("env", {}).items()},
            cwd=str(spec["cwd"]) if spec.get("cwd") else None,
            url=str(url) if url is not None else None,
            headers={str(k): str(v) for k, v in spec.get("headers", {}).items()},
            timeout_s=float(spec.get("timeout_s", 30.0)),
            max_concurrency=int(spec.get("max_concurrency", 8)),
            startup_timeout_s=float(spec.get("startup_timeout_s", 15.0)),
            restart_backoff_s=float(spec.get("restart_backoff_s", 0.5)),
            max_restart_backoff_s=float(spec.get("max_restart_backoff_s", 30.0)),
            intents=_intents(where, spec.get("intents", {})),
        )
    except (TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if config.timeout_s <= 0 or config.max_concurrency < 1 or config.startup_timeout_s <= 0:
        raise ConfigError(f"{where}: timeout_s and startup_timeout_s must be positive, max_concurrency >= 1")
    return config


def _intents(where: str, value: Any) -> dict[str, tuple[Serves, ...]]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: 'intents' must map tool names to lists of intents")
    declared: dict[str, tuple[Serves, ...]] = {}
    for tool, entries in value.items():
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ConfigError(f"{where}: intents of {tool!r} must be a list of objects")
        declared[str(tool)] = tuple(_serves(f"{where}, tool {tool!r}", entry) for entry in entries)
    return declared


def _serves(where: str, entry: dict[str, Any]) -> Serves:
    intent, arguments, reply = entry.get("intent"), entry.get("arguments", {}), entry.get("reply", "")
    if not isinstance(intent, str) or not isinstance(arguments, dict) or not isinstance(reply, str):
        raise ConfigError(f"{where}: an intent needs 'intent' (text), 'arguments' (object), 'reply' (text)")
    fills: dict[str, Fill] = {}
    for argument, fill in arguments.items():
        if not isinstance(fill, dict) or not all(isinstance(v, str) for v in fill.values()):
            raise ConfigError(f"{where}: argument {argument!r} must be an object of texts")
        unknown = set(fill) - {"slot", "question", "part", "joiner"}
        if unknown:
            raise ConfigError(f"{where}: argument {argument!r} has unknown keys {sorted(unknown)}")
        try:
            part = SlotPart(fill.get("part", SlotPart.WHOLE.value))
        except ValueError:
            choices = ", ".join(p.value for p in SlotPart)
            raise ConfigError(f"{where}: argument {argument!r}: 'part' is one of {choices}") from None
        fills[str(argument)] = Fill(
            fill.get("slot", ""), fill.get("question", ""), part, fill.get("joiner", "")
        )
    return Serves(intent, fills, reply)
