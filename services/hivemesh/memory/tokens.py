"""Approximate token counting, good enough to budget a prompt without a model's tokenizer.

Rule: a turn costs ceil(characters / 4) tokens for its text (the usual ratio for English with BPE
tokenizers) plus 4 tokens of per-message overhead (role and separators in chat templates).
"""

from __future__ import annotations

from collections.abc import Sequence

from hivemesh.memory.model import Context, Turn

CHARS_PER_TOKEN = 4
TURN_OVERHEAD_TOKENS = 4


def text_tokens(text: str) -> int:
    """The estimated tokens of ``text`` alone: ceil(characters / 4)."""
    return -(-len(text) // CHARS_PER_TOKEN)


def turn_tokens(turn: Turn) -> int:
    return text_tokens(turn.text) + TURN_OVERHEAD_TOKENS


def fit(turns: Sequence[Turn], budget: int) -> Context:
    """The most recent turns (``turns`` is oldest first) whose estimated tokens fit in ``budget``.

    Stops at the first turn that does not fit rather than skipping it, so the context stays a
    contiguous tail of the conversation.
    """
    kept: list[Turn] = []
    used = 0
    for turn in reversed(turns):
        cost = turn_tokens(turn)
        if used + cost > budget:
            break
        kept.append(turn)
        used += cost
    kept.reverse()
    return Context(turns=tuple(kept), truncated=len(kept) < len(turns), token_count=used)
