"""A tool source whose tools a test adds, replaces and removes while the service runs, the way an
MCP server's tools come and go."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from hivemesh.tool.decorator import Arg, FunctionTool, tool
from hivemesh.tool.model import Tool, ToolOutput


class Shelf:
    """A ToolSource: ``tools()`` is read on every lookup, so changes show at once."""

    def __init__(self, *tools: Tool) -> None:
        self._tools = {item.spec.name: item for item in tools}

    def tools(self) -> Sequence[Tool]:
        return tuple(self._tools.values())

    def put(self, item: Tool) -> None:
        self._tools[item.spec.name] = item

    def take(self, name: str) -> None:
        del self._tools[name]


def echo(name: str = "shelf.echo") -> FunctionTool:
    @tool(name=name)
    def say(text: str) -> ToolOutput:
        """Say the text back."""
        return ToolOutput({"text": text}, text)

    return say


def echo_repeating(name: str = "shelf.echo") -> FunctionTool:
    """``echo`` with one more argument: the same name, another schema."""

    @tool(name=name)
    def say(text: str, times: Annotated[int, Arg(minimum=1)] = 1) -> ToolOutput:
        """Say the text back, as many times as asked."""
        return ToolOutput({"text": text * times}, text * times)

    return say
