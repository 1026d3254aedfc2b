"""Splitting a request that asks for several things into requests that each ask for one.

Conservative on purpose: a wrong split sends half a request to the wrong tool, a missed split only
answers less. "and" splits only when the words after it start a request of their own ("... and
what time is it in Tokyo", "... and add eggs to my list"), so "add eggs and milk to my list",
"12 * (3 + 4)" and "remember that Tom and Ana are my cousins" stay whole.
"""

from __future__ import annotations

import re
from typing import Final

# Words that begin a request on their own: imperatives of the agent's skills and questions.
_STARTERS: Final = (
    r"what(?:'s|s)?|what\s+is|when|where|who|how|which|why|is\s+it|are\s+there|do\s+i|"
    r"convert|calculate|compute|add|put|remove|delete|take|cross|show|list|clear|empty|"
    r"set|start|remind|roll|flip|toss|spell|remember|recall|tell|give|play|book|send|email|"
    r"check|find|look\s+up|translate|count|read|open|schedule|create|make|cancel|stop|"
    r"can\s+you|could\s+you|would\s+you|will\s+you|please|also|then|plus|i\s+(?:also\s+)?(?:want|need)"
)
_STARTER = re.compile(rf"^\s*(?:{_STARTERS})\b", re.IGNORECASE)
# Always a boundary between requests.
_STRONG = re.compile(
    r"\s*(?:[;\n]+|(?<=[?!])\s+|(?<=[a-z\d)\"'])\.\s+(?=[A-Za-z])|,?\s+and\s+then\s+|,?\s+and\s+also\s+|"
    r",\s*then\s+|\s+then\s+(?=(?:" + _STARTERS + r")\b)|,?\s+after\s+that,?\s+|,?\s+also,?\s+)\s*",
    re.IGNORECASE,
)
# A boundary only when the right side starts a request.
_WEAK = re.compile(r"\s*(?:,\s*and|,|\s+and|\s+&|\s+plus)\s+", re.IGNORECASE)
# Clauses whose "and" belongs to the content, not to the request ("remember that A and B").
_OPAQUE = re.compile(
    r"^\s*(?:please\s+)?(?:remember|don'?t\s+forget|note|keep\s+in\s+mind|remind\s+me|spell|"
    r"what\s+did\s+i\s+(?:say|tell))\b",
    re.IGNORECASE,
)
_LIST_VERBS = re.compile(r"^\s*(?:please\s+)?(?:add|put|remove|delete|take|cross)\b", re.IGNORECASE)


def _words(text: str) -> int:
    return len(re.findall(r"\w+", text))


def _split_weak(clause: str) -> list[str]:
    parts: list[str] = []
    rest = clause
    while True:
        cut = None
        for m in _WEAK.finditer(rest):
            left, right = rest[: m.start()], rest[m.end() :]
            if _words(left) < 2 or _words(right) < 2 or not _STARTER.match(right):
                continue
            if _OPAQUE.match(left) and not re.match(r"\s*(?:what|when|where|who|how|which)\b", right, re.I):
                continue
            # "add eggs, milk and bread to my list": until the list is named, an "and" after a list
            # verb still joins items, even before a word that could start a request.
            if _LIST_VERBS.match(left) and not re.search(r"\b(?:to|on|onto|from|off)\b", left):
                continue
            cut = (left, right)
            break
        if cut is None:
            parts.append(rest)
            return parts
        parts.append(cut[0])
        rest = cut[1]


def _tidy(part: str) -> str:
    part = part.strip(" ,;")
    part = re.sub(r"^(?:and|also|then|plus|&)\s+", "", part, flags=re.IGNORECASE)
    part = re.sub(r"^(?:and|also|then)\s+", "", part, flags=re.IGNORECASE)
    return part.strip(" ,;")


def split_compound(text: str) -> list[str]:
    """Independent requests in ``text``, in order; the whole text (stripped) when it asks for one thing."""
    stripped = text.strip()
    if not stripped:
        return []
    clauses = [c for c in _STRONG.split(stripped) if c and c.strip(" ,;.")]
    parts: list[str] = []
    for clause in clauses:
        parts.extend(p for p in (_tidy(x) for x in _split_weak(clause)) if p)
    # A fragment too short to be a request ("thanks", "ok") rejoins the one before it.
    merged: list[str] = []
    for part in parts:
        if merged and _words(part) < 2:
            merged[-1] = f"{merged[-1]} {part}"
        else:
            merged.append(part)
    return merged or [stripped]
