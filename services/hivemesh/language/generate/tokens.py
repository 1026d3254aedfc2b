"""Approximate token counts for backends that have no tokenizer (or servers that report none)."""

from __future__ import annotations

import re

from hivemesh.language.v1 import language_service_pb2 as pb

# Words and punctuation marks: within a few percent of BPE counts for English prose, and never 0
# for non-empty text, which is what usage accounting needs.
_PIECE = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    return len(_PIECE.findall(text))


def count_prompt_tokens(request: pb.GenerateRequest) -> int:
    total = 0
    for message in request.messages:
        # A few tokens of framing per message, as chat templates add role markers.
        total += 4 + count_tokens(message.content)
        for call in message.tool_calls:
            total += count_tokens(call.name) + count_tokens(str(call.arguments))
    return total
