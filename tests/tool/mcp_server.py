"""A small MCP server over stdio for the bridge's tests.

``python mcp_server.py`` serves the tools below; ``--silent`` reads requests and never answers.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from mcp.server.fastmcp import Context, FastMCP

server = FastMCP("testing")


@server.tool()
def echo(text: str) -> str:
    """Say the text back."""
    return text


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
async def count(steps: int, ctx: Context) -> str:  # type: ignore[type-arg]
    """Count up, reporting progress at each step."""
    for step in range(1, steps + 1):
        await ctx.report_progress(step, steps, f"step {step}")
        await asyncio.sleep(0.01)
    return f"counted {steps}"


@server.tool()
async def crash() -> str:
    """Exit the server in the middle of the call."""
    await asyncio.sleep(0.05)
    os._exit(3)


@server.tool()
async def hang() -> str:
    """Never answer."""
    await asyncio.Event().wait()
    return "unreachable"


@server.tool()
def spawn_child() -> int:
    """Start a long-lived child process and return its pid."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    return child.pid


@server.tool()
def fail() -> str:
    """Report an error result."""
    raise ValueError("the gadget is out of order")


def silent() -> None:
    for _ in sys.stdin:
        pass


if __name__ == "__main__":
    if "--silent" in sys.argv:
        silent()
    else:
        server.run("stdio")
