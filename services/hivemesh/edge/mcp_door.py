"""The MCP door: hivemesh's tools, with their JSON Schemas, and ``ask_agent`` (a whole task: text
in, answer out), over MCP's streamable HTTP transport (``/mcp`` on the edge, stateless, so any
replica answers any request) and over stdio (``hivemesh mcp-stdio``). Needs ``hivemesh[edge]``.

Tool calls go through the gateway, never to the tool service directly: the edge holds no signing
key, so it cannot mint the mesh credential the tool service requires. The gateway authenticates
the caller and calls ToolService for the caller's tenant with a credential it signs for the call
(GatewayService.InvokeTool), so the tool's argument validation, bulkhead, timeout and idempotency
apply as for a task's step. Every call is new (a fresh request id): MCP has no idempotency key.

A failure of a call (bad arguments, an unknown tool, a refusal of the gateway) is a tool result
with ``isError`` and the gateway's status in its text, for the model to read and correct; a
listing that fails is a JSON-RPC error.

Who calls: over HTTP, the request's headers (see callers.py); over stdio, the environment.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import grpc
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import McpError
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from hivemesh.common.v1.task_pb2 import TaskState
from hivemesh.edge.callers import Caller, caller_from_env, caller_from_headers
from hivemesh.edge.config import EdgeConfig
from hivemesh.edge.conversation import Turn
from hivemesh.edge.gateway import GatewayLink
from hivemesh.mesh.config import Settings
from hivemesh.mesh.status import StatusDetails, details_of
from hivemesh.mesh.structs import plain
from hivemesh.tool.v1.tool_service_pb2 import ToolSpec

ASK_AGENT = "ask_agent"
# The session of ask_agent when neither the call nor the caller names one.
DEFAULT_SESSION = "mcp"
INSTRUCTIONS = (
    "hivemesh is an agent runtime. Call ask_agent with a request in plain words to have the agent "
    "plan and answer it (it remembers the conversation of its session), or call a tool directly."
)
_ASK_AGENT_TOOL = types.Tool(
    name=ASK_AGENT,
    title="Ask the agent",
    description=(
        "Send a request in plain words to the hivemesh agent, which plans it, calls its tools and "
        "answers. Requests in one session are one conversation. When the answer's state is "
        "input_required, the answer is a question: call again with the reply and that task_id."
    ),
    inputSchema={
        "type": "object",
        "properties": {
            "text": {"type": "string", "minLength": 1, "maxLength": 16384, "description": "The request."},
            "session": {
                "type": "string",
                "maxLength": 128,
                "description": "The conversation; the caller's session, else 'mcp', when omitted.",
            },
            "task_id": {
                "type": "string",
                "maxLength": 128,
                "description": "Answer the question of this task (input_required) instead of asking anew.",
            },
        },
        "required": ["text"],
        "additionalProperties": False,
    },
    outputSchema={
        "type": "object",
        "properties": {
            "answer": {"type": "string", "description": "The answer, or the agent's question."},
            "state": {"type": "string", "enum": ["completed", "input_required"]},
            "task_id": {"type": "string"},
            "session": {"type": "string"},
        },
        "required": ["answer", "state", "task_id", "session"],
    },
)
_CLIENT_ERRORS = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)


def describe(details: StatusDetails) -> str:
    """A gateway refusal in one line: code, reason, message and each field at fault."""
    reason = f" ({details.reason})" if details.reason else ""
    fields = "".join(f"; {f}: {d}" for f, d in details.field_violations)
    retry = f"; retry after {details.retry_delay_s:g}s" if details.retry_delay_s is not None else ""
    return f"{details.code.name}{reason}: {details.message}{fields}{retry}"


def mcp_tool(spec: ToolSpec) -> types.Tool:
    """A hivemesh tool as MCP lists it: its schemas as they are (an output schema only when the
    result is an object, as MCP requires)."""
    arguments = plain(spec.arguments_schema) or {"type": "object"}
    result = plain(spec.result_schema)
    return types.Tool(
        name=spec.name,
        description=spec.description,
        inputSchema=arguments,
        outputSchema=result if result.get("type") == "object" else None,
        annotations=types.ToolAnnotations(
            readOnlyHint=not spec.side_effects, openWorldHint=spec.source != "builtin"
        ),
    )


def _failed(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], isError=True)


class McpDoor:
    """The MCP server; ``caller_of`` says who calls, from the HTTP request (None over stdio)."""

    def __init__(self, gateway: GatewayLink, caller_of: Callable[[Request | None], Caller]) -> None:
        self._gateway = gateway
        self._caller_of = caller_of
        self.server: Server[Any, Any] = Server("hivemesh", instructions=INSTRUCTIONS)
        self.server.list_tools()(self._list_tools)  # type: ignore[no-untyped-call]  # the SDK leaves it untyped
        # The tool service validates arguments (and names the JSON path at fault); validating them
        # here first would hide its answer.
        self.server.call_tool(validate_input=False)(self._call_tool)

    def _caller(self) -> Caller:
        request = self.server.request_context.request
        return self._caller_of(request if isinstance(request, Request) else None)

    async def _list_tools(self) -> list[types.Tool]:
        try:
            specs = await self._gateway.client(self._caller()).list_tools()
        except grpc.aio.AioRpcError as exc:
            details = details_of(exc)
            code = types.INVALID_REQUEST if details.code in _CLIENT_ERRORS else types.INTERNAL_ERROR
            raise McpError(types.ErrorData(code=code, message=describe(details))) from exc
        return [_ASK_AGENT_TOOL, *(mcp_tool(s) for s in specs if s.name != ASK_AGENT)]

    async def _call_tool(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        caller = self._caller()
        try:
            if name == ASK_AGENT:
                return await self._ask(caller, arguments)
            response = await self._gateway.client(caller).invoke_tool(name, arguments, user_id=caller.user_id)
        except grpc.aio.AioRpcError as exc:
            return _failed(describe(details_of(exc)))
        result = plain(response.result)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=response.display or json.dumps(result))],
            structuredContent=result,
            isError=False,
        )

    async def _ask(self, caller: Caller, arguments: dict[str, Any]) -> types.CallToolResult:
        text, session, task_id = arguments.get("text"), arguments.get("session"), arguments.get("task_id")
        if not isinstance(text, str) or not text.strip():
            return _failed("INVALID_ARGUMENT: text: must be a non-empty string")
        if session is not None and not isinstance(session, str):
            return _failed("INVALID_ARGUMENT: session: must be a string")
        if task_id is not None and not isinstance(task_id, str):
            return _failed("INVALID_ARGUMENT: task_id: must be a string")
        turn = Turn(
            text, caller.user_id, session or caller.session_id or DEFAULT_SESSION, answers_task=task_id
        )
        progress, events = await self._gateway.conversation(caller).run(turn)
        async for event in events:
            progress.add(event)
        task = progress.task
        if not progress.paused:
            state = TaskState.Name(task.state).removeprefix("TASK_STATE_")
            error = f" ({task.error.reason}): {task.error.message}" if task.HasField("error") else ""
            return _failed(f"the task {task.task_id} ended {state}{error}")
        state = "input_required" if task.state == TaskState.TASK_STATE_INPUT_REQUIRED else "completed"
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=task.answer)],
            structuredContent={
                "answer": task.answer,
                "state": state,
                "task_id": task.task_id,
                "session": turn.session_id,
            },
            isError=False,
        )


class McpHttp:
    """The MCP door over streamable HTTP, stateless: each request is served on its own, by any
    replica. ``run()`` must be entered while the app serves (its lifespan)."""

    def __init__(self, gateway: GatewayLink, max_body_bytes: int) -> None:
        self.door = McpDoor(gateway, self._caller)
        self.manager = StreamableHTTPSessionManager(
            app=self.door.server, stateless=True, max_request_body_size=max_body_bytes
        )

    @staticmethod
    def _caller(request: Request | None) -> Caller:
        return caller_from_headers(request.headers) if request is not None else caller_from_env({})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.manager.handle_request(scope, receive, send)


async def serve_stdio(settings: Settings, config: EdgeConfig, address: str | None = None) -> None:
    """The MCP door over stdin and stdout, for an MCP client that starts it as a subprocess: calls
    go to the gateway at ``address`` with the credentials of the environment."""
    gateway = GatewayLink(address or settings.addresses["gateway"], settings, config)
    await gateway.open()
    caller = caller_from_env()
    door = McpDoor(gateway, lambda _request: caller)
    try:
        async with stdio_server() as (read, write):
            await door.server.run(read, write, door.server.create_initialization_options())
    finally:
        await gateway.close()
