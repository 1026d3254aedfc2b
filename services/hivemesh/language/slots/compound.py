"""Splitting a request that asks for several things into requests that each ask for one.

Conservative on purpose: a wrong split sends half a request to the wrong tool, a missed split only
answers less. "and" splits only when the words after it start a request of their own ("... and
what time is it in Tokyo", "... and add eggs to my list"), so "add eggs and milk to my list",
"12 * (3 + 4)" and "remember that Tom and Ana are my cousins" stay whole.
"""

from __future__ import annotations

import bisect
import re
from typing import Final

from hivemesh.language.slots.spacing import squeeze_spaces

# Words that begin a request on their own: imperatives of the agent's skills and questions.
_STARTERS: Final = (
    r"what(?:'s|s)?|what\s+is|when|where|who|how|which|why|is\s+it|are\s+there|do\s+i|"
    r"convert|calculate|compute|add|put|remove|delete|take|cross|show|list|clear|empty|"
    r"set|start|remind|roll|flip|toss|spell|remember|recall|tell|give|play|book|send|email|"
    r"check|find|look\s+up|translate|count|read|open|schedule|create|make|cancel|stop|"
    r"can\s+you|could\s+you|would\s+you|will\s+you|please|also|then|plus|i\s+(?:also\s+)?(?:want|need)"
)
_STARTER = re.compile(rf"\s*(?:{_STARTERS})\b", re.IGNORECASE)
# Always a boundary between requests.
_STRONG = re.compile(
    r"\s*(?:[;\n]+|(?<=[?!])\s+|(?<=[a-z\d)\"'])\.\s+(?=[A-Za-z])|,?\s+and\s+then\s+|,?\s+and\s+also\s+|"
    r",\s*then\s+|\s+then\s+(?=(?:" + _STARTERS + r")\b)|,?\s+after\s+that,?\s+|,?\s+also,?\s+)\s*",
    re.IGNORECASE,
)
# A boundary only when the right side starts a request.
_WEAK = re.compile(r"\s*(?:,\s*and|,|\s+and|\s+&|\s+plus)\s+", re.IGNORECASE)
# Clauses whose "and" belongs to the content, not to the request ("remember that A and B").
# _STARTER, _OPAQUE and _LIST_VERBS are matched at a position of the clause (``match(clause, at)``).
_OPAQUE = re.compile(
    r"\s*(?:please\s+)?(?:remember|don'?t\s+forget|note|keep\s+in\s+mind|remind\s+me|spell|"
    r"what\s+did\s+i\s+(?:say|tell))\b",
    re.IGNORECASE,
)
# "spell dog and roll a die": the word to spell is one word, so after it the clause is no longer opaque.
_SPELL_ONE_WORD = re.compile(
    r"\s*(?:please\s+)?(?:how\s+(?:do|would)\s+(?:you|i)\s+)?spell\s+[\"']?[\w'-]+[\"']?\s*$", re.IGNORECASE
)
# A clause that asks about the one before it ("I weigh 80 kilos, what is that in pounds", "20% off,
# what do I pay"): it has no request of its own to split off.
_REFERS_BACK = re.compile(
    r"\s*(?:so\s+)?(?:(?:what|how\s+much)(?:'s|\s+is|\s+are|\s+would|\s+will)\s+(?:that|this|it|those|these)\b|"
    r"(?:what|how\s+much)\s+(?:do|would|will|should|did)\s+(?:i|we)\s+(?:pay|owe|spend|save|get\s+back)\b)",
    re.IGNORECASE,
)
_LIST_VERBS = re.compile(r"\s*(?:please\s+)?(?:add|put|remove|delete|take|cross)\b", re.IGNORECASE)
_NAMES_A_PLACE = re.compile(r"\b(?:to|on|onto|from|off)\b", re.IGNORECASE)
_QUESTION = re.compile(r"\s*(?:what|when|where|who|how|which)\b", re.IGNORECASE)
_WORD = re.compile(r"\w+")


def _words(text: str) -> int:
    return len(_WORD.findall(text))


def _split_weak(clause: str) -> list[str]:
    # Word counts on either side of a candidate come from the word positions, found once: counting
    # the words of each side again for every candidate is quadratic in the clause.
    starts = [m.start() for m in _WORD.finditer(clause)]
    places = [m.start() for m in _NAMES_A_PLACE.finditer(clause)]
    parts: list[str] = []
    begin = 0
    for m in _WEAK.finditer(clause):
        # No word crosses ``begin``, the start or the end of a match: each is at white space or a comma.
        words_left = bisect.bisect_left(starts, m.start()) - bisect.bisect_left(starts, begin)
        words_right = len(starts) - bisect.bisect_left(starts, m.end())
        if words_left < 2 or words_right < 2 or not _STARTER.match(clause, m.end()):
            continue
        if _REFERS_BACK.match(clause, m.end()):
            continue
        opaque = _OPAQUE.match(clause, begin, m.start()) and not _SPELL_ONE_WORD.fullmatch(
            clause, begin, m.start()
        )
        if opaque and not _QUESTION.match(clause, m.end()):
            continue
        # "add eggs, milk and bread to my list": until the list is named, an "and" after a list
        # verb still joins items, even before a word that could start a request.
        names_a_place = bisect.bisect_left(places, begin) < bisect.bisect_left(places, m.start())
        if _LIST_VERBS.match(clause, begin, m.start()) and not names_a_place:
            continue
        parts.append(clause[begin : m.start()])
        begin = m.end()
    parts.append(clause[begin:])
    return parts


def _tidy(part: str) -> str:
    part = part.strip(" ,;")
    part = re.sub(r"^(?:and|also|then|plus|&)\s+", "", part, flags=re.IGNORECASE)
    part = re.sub(r"^(?:and|also|then)\s+", "", part, flags=re.IGNORECASE)
    return part.strip(" ,;")


def split_compound(text: str) -> list[str]:
    """Independent requests in ``text``, in order; the whole text (stripped) when it asks for one thing."""
    stripped = squeeze_spaces(text).strip()
    if not stripped:
        return []
    clauses = [c for c in _STRONG.split(stripped) if c and c.strip(" ,;.")]
    parts: list[str] = []
    for clause in clauses:
        parts.extend(p for p in (_tidy(x) for x in _split_weak(clause)) if p)
    # A fragment too short to be a request ("thanks", "ok") rejoins the one before it.
    merged: list[list[str]] = []
    for part in parts:
        if merged and _words(part) < 2:
            merged[-1].append(part)
        else:
            merged.append([part])
    return [" ".join(pieces) for pieces in merged] or [stripped]
