"""The built-in backend: replies composed from the plan's results, deterministic, no model.

What it says, in order of precedence:
1. the planner's own reply, when the conversation ends with an ASSISTANT message that has text;
2. the tool results after the last USER message: one result is returned exactly as the tool
   displayed it ("84"), several one per line;
3. otherwise a reply for the understood intent (a greeting, an honest "that's outside what I can help with",
   "no tool for it is installed" when Understand found no installed tool serves it), in the words
   of the reply catalogue (``hivemesh.mesh.replies``), as the planner says them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Final

from hivemesh.common.v1 import content_pb2
from hivemesh.language.generate.tokens import count_prompt_tokens, count_tokens
from hivemesh.language.v1 import language_service_pb2 as pb
from hivemesh.mesh import replies
from hivemesh.mesh.intents import AgentIntent

FALLBACK_REPLIES: Final = {
    AgentIntent.GREETING: replies.GREETING,
    AgentIntent.REMEMBER: replies.REMEMBERED,
    AgentIntent.RECALL: replies.RECALL_NOTHING,
}
# Words with the whitespace after them, so the deltas concatenate back to the exact reply.
_DELTA = re.compile(r"\S+\s*|\s+")


def _after_last_user(messages: list[pb.ChatMessage]) -> list[pb.ChatMessage]:
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == content_pb2.ROLE_USER:
            return messages[index + 1 :]
    return messages


def _intent_reply(understanding: pb.UnderstandResponse) -> str:
    if understanding.parts:
        return "\n".join(_intent_reply(part) for part in understanding.parts)
    intent = understanding.intent
    own = AgentIntent.of(intent)
    if understanding.out_of_scope or own is AgentIntent.OUT_OF_SCOPE:
        return replies.OUT_OF_SCOPE
    if understanding.without_tool or intent in replies.WITHOUT_TOOL:
        return replies.without_tool(intent)
    if own in FALLBACK_REPLIES:
        return FALLBACK_REPLIES[own]
    if not intent:
        return replies.HOW_CAN_I_HELP
    return replies.NO_RESULT


def compose_reply(request: pb.GenerateRequest) -> str:
    """The reply text for ``request`` (see the module docstring for the rules)."""
    messages = list(request.messages)
    if messages and messages[-1].role == content_pb2.ROLE_ASSISTANT and messages[-1].content.strip():
        return messages[-1].content
    results = [m for m in _after_last_user(messages) if m.role == content_pb2.ROLE_TOOL]
    if results:
        if len(results) == 1:
            return results[0].content
        return "\n".join(m.content.strip() or f"{m.name or 'tool'}: done" for m in results)
    return _intent_reply(request.understanding)


class BuiltinBackend:
    """Streams the composed reply word by word, then usage and FINISH_REASON_STOP."""

    async def generate(self, request: pb.GenerateRequest) -> AsyncIterator[pb.GenerateResponse]:
        reply = compose_reply(request)
        for piece in _DELTA.findall(reply):
            yield pb.GenerateResponse(text_delta=piece)
        yield pb.GenerateResponse(
            usage=pb.Usage(prompt_tokens=count_prompt_tokens(request), completion_tokens=count_tokens(reply))
        )
        yield pb.GenerateResponse(finish_reason=pb.FINISH_REASON_STOP)

    async def aclose(self) -> None:
        """Nothing to release."""
