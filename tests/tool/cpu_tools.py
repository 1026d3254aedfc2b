"""cpu_bound tools for tests: defined at the top level, as a worker process imports them by name."""

from __future__ import annotations

import os
import time
from typing import Annotated

from hivemesh.mesh.errors import InvalidArgument
from hivemesh.tool.decorator import Arg, tool
from hivemesh.tool.model import ToolOutput


@tool(name="spin", timeout_s=1.0, cpu_bound=True)
def spin(seconds: Annotated[float, Arg(minimum=0)]) -> ToolOutput:
    """Compute in pure Python for ``seconds`` (never waiting, never yielding), then name the process.

    Args:
        seconds: How long to compute.
    """
    end = time.monotonic() + seconds
    loops = 0
    while time.monotonic() < end:
        loops += 1
    return ToolOutput({"pid": os.getpid(), "loops": loops}, str(os.getpid()))


@tool(name="picky", timeout_s=1.0, cpu_bound=True)
def picky(word: str) -> ToolOutput:
    """Refuse every word but "yes" by name, and fail outright on "crash".

    Args:
        word: The word.
    """
    if word == "crash":
        raise RuntimeError("the widget fell over in a worker")
    if word != "yes":
        raise InvalidArgument.field("arguments.word", "must be yes", reason="NOT_YES")
    return ToolOutput({"word": word}, word)


TOOLS = [spin, picky]
