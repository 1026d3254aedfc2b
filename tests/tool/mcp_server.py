"""A small MCP server for the bridge's tests.

``python mcp_server.py`` serves the tools below over stdio; ``--silent`` reads requests and never
answers. ``python mcp_server.py --http PORT`` serves them over streamable HTTP at
``http://127.0.0.1:PORT/mcp`` instead (``0`` picks a free port) and prints the port once it listens.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

import uvicorn
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


@server.tool()
def forget_sessions() -> str:
    """Drop every session, as a restarted or expiring server would, leaving their connections open."""
    server.session_manager._server_instances.clear()
    return "forgotten"


@server.tool()
async def learn(name: str, ctx: Context) -> str:  # type: ignore[type-arg]
    """Add a tool that says its own name, and announce that the tools changed."""

    def say() -> str:
        return name

    server.add_tool(say, name=name, description=f"Say {name}.")
    await ctx.session.send_tool_list_changed()
    return f"learned {name}"


@server.tool()
async def unlearn(name: str, ctx: Context) -> str:  # type: ignore[type-arg]
    """Remove a tool added by ``learn``, and announce that the tools changed."""
    server.remove_tool(name)
    await ctx.session.send_tool_list_changed()
    return f"forgot {name}"


def silent() -> None:
    for _ in sys.stdin:
        pass


def serve_http(port: int) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    print(listener.getsockname()[1], flush=True)
    config = uvicorn.Config(server.streamable_http_app(), log_level="warning")
    asyncio.run(uvicorn.Server(config).serve(sockets=[listener]))


if __name__ == "__main__":
    if "--silent" in sys.argv:
        silent()
    elif "--http" in sys.argv:
        serve_http(int(sys.argv[sys.argv.index("--http") + 1]))
    else:
        server.run("stdio")
