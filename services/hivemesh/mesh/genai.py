"""The OpenTelemetry GenAI semantic conventions as hivemesh uses them: the attribute names of its
``invoke_agent`` span (one per run of a task), ``execute_tool`` spans (one per tool call) and
``chat`` client spans (one per call to an OpenAI-compatible server), and the helpers that fill them.

Span attributes are set on whatever span is current; when nothing records spans that is the
invalid span, whose setters do nothing, so none of this costs a span object."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from hivemesh.common.v1.task_pb2 import Task
from hivemesh.mesh.errors import HivemeshError

OPERATION_NAME = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
AGENT_NAME_KEY = "gen_ai.agent.name"
CONVERSATION_ID = "gen_ai.conversation.id"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"

# gen_ai.operation.name values.
INVOKE_AGENT = "invoke_agent"
EXECUTE_TOOL = "execute_tool"
CHAT = "chat"
EMBEDDINGS = "embeddings"

AGENT_NAME = "hivemesh"
# The provider of any server speaking the OpenAI chat completions API.
OPENAI = "openai"

# hivemesh's own attributes.
TASK_ID = "hivemesh.task.id"
TASK_STATE = "hivemesh.task.state"
TENANT_ID = "hivemesh.tenant.id"
ATTEMPT = "hivemesh.task.attempt"
DELIVERY = "hivemesh.task.delivery"


def describe_task(span: trace.Span, task: Task, attempt: int) -> None:
    """The task's conversation, tenant and attempt on its ``invoke_agent`` span."""
    if not span.is_recording():
        return
    span.set_attribute(CONVERSATION_ID, task.scope.session_id)
    span.set_attribute(TENANT_ID, task.scope.tenant_id)
    span.set_attribute(ATTEMPT, attempt)


def failed(span: trace.Span, exc: HivemeshError) -> None:
    """Mark ``span`` failed with the error's reason as ``error.type``."""
    if not span.is_recording():
        return
    span.set_attribute(ERROR_TYPE, exc.reason or exc.code.name)
    span.set_status(Status(StatusCode.ERROR, exc.message))


def usage(span: trace.Span, input_tokens: int, output_tokens: int) -> None:
    """The token usage of a span's model calls as its ``gen_ai.usage.*`` attributes."""
    if not span.is_recording():
        return
    span.set_attribute(INPUT_TOKENS, input_tokens)
    span.set_attribute(OUTPUT_TOKENS, output_tokens)
