"""spell: the letters of a word."""

from __future__ import annotations

from typing import Annotated, TypedDict

from hivemesh.tool.decorator import Arg, tool
from hivemesh.tool.model import Fill, Serves, ToolOutput


class SpellResult(TypedDict):
    word: str
    letters: list[str]


@tool(
    result=SpellResult,
    timeout_s=1.0,
    serves=Serves("spell", {"word": Fill("word", question="Which word should I spell?")}),
)
def spell(word: Annotated[str, Arg(min_length=1, max_length=100, pattern=r"\S")]) -> ToolOutput:
    """Spell a word letter by letter ("cat" -> C-A-T; words of a phrase are kept apart).

    Args:
        word: The word or short phrase to spell.
    """
    words = word.split()
    letters = [c for w in words for c in w]
    return ToolOutput(
        {"word": " ".join(words), "letters": letters}, " ".join("-".join(w.upper()) for w in words)
    )
