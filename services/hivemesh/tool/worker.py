"""The process that runs ``cpu_bound`` tools: ``python -m hivemesh.tool.worker [module ...]``.

It imports the modules named on its command line (so that its first call does not pay for them),
says it is ready, runs the ``warm_up()`` of those that define one in a thread, and answers one call
at a time, each a line of JSON:

- in: ``{"module": ..., "tool": ..., "arguments": {...}}``
- out: ``{"ok": {"value": {...}, "display": ...}}`` or ``{"error": {...}}``

A tool's error travels back as data (``encode_error``/``decode_error``): a domain error keeps its
code, reason, metadata and field violations; any other exception its type, message and traceback.
The tool service kills the process when a call's time is up, so nothing here has to stop a call;
end of input (the service closed the pipe, or died) ends the process.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Mapping
from typing import IO, Any

from hivemesh.mesh import errors
from hivemesh.mesh.errors import Code, FieldViolation, HivemeshError, InvalidArgument, ResourceExhausted
from hivemesh.tool.model import ToolOutput, ToolTarget


class ToolRaised(Exception):
    """An exception a tool raised in a worker process, as the service sees it: its type's name,
    its message and the traceback where it was raised."""

    def __init__(self, type_name: str, message: str, remote_traceback: str) -> None:
        super().__init__(message)
        self.type_name = type_name
        self.remote_traceback = remote_traceback


def encode_error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, HivemeshError):
        return {
            "class": type(exc).__name__,
            "code": int(exc.code),
            "message": exc.message,
            "reason": exc.reason,
            "metadata": exc.metadata,
            "violations": [[v.field, v.description] for v in getattr(exc, "violations", ())],
            "retry_after_s": getattr(exc, "retry_after_s", None),
        }
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }


# Each code's error class, for domain errors of a class the service does not know by name.
_BY_CODE: dict[int, type[HivemeshError]] = {
    int(cls.code): cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, HivemeshError) and cls is not errors.DownstreamError
}


def decode_error(data: Mapping[str, Any]) -> Exception:
    if "code" not in data:
        return ToolRaised(
            str(data.get("type", "Exception")), str(data.get("message", "")), str(data.get("traceback", ""))
        )
    named = getattr(errors, str(data.get("class", "")), None)
    code = int(data["code"])
    cls = (
        named
        if isinstance(named, type) and issubclass(named, HivemeshError)
        else _BY_CODE.get(code, HivemeshError)
    )
    message, reason = str(data["message"]), str(data["reason"])
    metadata = {str(k): str(v) for k, v in dict(data.get("metadata") or {}).items()}
    if issubclass(cls, InvalidArgument):
        violations = [FieldViolation(str(f), str(d)) for f, d in data.get("violations") or ()]
        return cls(message, violations=violations, reason=reason, metadata=metadata)
    if issubclass(cls, ResourceExhausted):
        return cls(
            message, retry_after_s=float(data.get("retry_after_s") or 0.0), reason=reason, metadata=metadata
        )
    error = cls(message, reason=reason, metadata=metadata)
    if cls is HivemeshError:
        error.code = Code(code)
    return error


def find_tool(target: ToolTarget) -> Any:
    """The tool named ``target.tool`` that module ``target.module`` defines."""
    from hivemesh.tool.decorator import FunctionTool  # noqa: PLC0415 - keeps this module light to import

    module = importlib.import_module(target.module)
    for value in vars(module).values():
        if isinstance(value, FunctionTool) and value.spec.name == target.tool:
            return value
    raise LookupError(f"module {target.module} defines no tool named {target.tool!r}")


def answer(request: Mapping[str, Any], tools: dict[ToolTarget, Any]) -> dict[str, Any]:
    """The answer to one request: the tool's output or its error."""
    try:
        target = ToolTarget(str(request["module"]), str(request["tool"]))
        tool = tools.get(target)
        if tool is None:
            tool = tools[target] = find_tool(target)
        output: ToolOutput = tool.call(request["arguments"])
        return {"ok": {"value": dict(output.value), "display": output.display}}
    except Exception as exc:  # every failure of a tool goes back to the service as data
        return {"error": encode_error(exc)}


def _warm(warm_ups: list[Any]) -> None:
    for warm_up in warm_ups:
        try:
            warm_up()
        except Exception as exc:  # the call that needs it then fails with the error itself
            print(f"hivemesh tool worker: warm-up failed: {exc}", file=sys.stderr)


def serve(requests: IO[bytes], answers: IO[bytes], preload: list[str]) -> None:
    warm_ups = []
    for name in preload:
        try:
            warm_up = getattr(importlib.import_module(name), "warm_up", None)
        except Exception as exc:  # a module that fails here fails its calls, with a clear error
            print(f"hivemesh tool worker: cannot import {name}: {exc}", file=sys.stderr)
            continue
        if callable(warm_up):
            warm_ups.append(warm_up)
    answers.write(b'{"ready": true}\n')
    answers.flush()
    # What a module builds on first use (pint's unit registry: most of a second) is built from the
    # start, beside the calls: a first call that needs it waits for less of it, and calls that do
    # not need it (the calculator) do not wait for it at all.
    threading.Thread(target=_warm, args=(warm_ups,), name="warm-up", daemon=True).start()
    tools: dict[ToolTarget, Any] = {}
    for line in requests:
        reply = answer(json.loads(line), tools)
        try:
            encoded = json.dumps(reply)
        except (TypeError, ValueError) as exc:
            encoded = json.dumps({"error": encode_error(TypeError(f"the tool's result is not JSON: {exc}"))})
        answers.write(encoded.encode() + b"\n")
        answers.flush()


def main() -> None:
    # The service stops workers itself (end of input, or a kill); ^C in a terminal is for it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Answers go to a copy of stdout; what tools print goes to stderr and cannot garble them.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, answers, sys.argv[1:])


if __name__ == "__main__":
    main()
