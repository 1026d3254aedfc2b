"""Named lists and their items: "add eggs, milk and bread to my shopping list".

List names are normalised so the same list is found however it is called: "grocery list" and
"groceries" are the ``shopping`` list, "to-do" and "to do" the ``todo`` list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from hivemesh.language.slots.scan import suffix_start

LIST_SYNONYMS: Final = {
    "shopping": "shopping", "grocery": "shopping", "groceries": "shopping", "shoping": "shopping",
    "shop": "shopping", "supermarket": "shopping", "store": "shopping",
    "todo": "todo", "to-do": "todo", "to do": "todo", "todos": "todo", "to-dos": "todo",
    "task": "todo", "tasks": "todo", "things to do": "todo",
}  # fmt: skip

_OWNER = r"(?:(?:my|the|our|a|this|that|your)\s+)?"
_NAME = r"(?P<name>[\w'-]+(?:\s+[\w'-]+){0,2}?)"
# "my shopping list", "the to-do list", "shopping", "my groceries". The name's first word runs to
# the end of its run of word characters, hyphens and apostrophes, so it is tried from the run's
# start only (skipping leading hyphens and apostrophes), not from every word boundary in it.
_NAMED_LIST = re.compile(rf"(?<![\w'-])['-]*+(?P<named>\b{_OWNER}{_NAME}\s+list\b)", re.IGNORECASE)
_KNOWN_LIST = re.compile(
    r"\b"
    + _OWNER
    + r"(?P<name>"
    + "|".join(sorted(map(re.escape, LIST_SYNONYMS), key=len, reverse=True))
    + r")\b",
    re.IGNORECASE,
)
# _ADD, _REMOVE and _ADD_TO_FIRST are tried from their verbs (the *_VERB patterns) on text of one
# line; see ``_search``.
_ADD_VERB = re.compile(
    r"\b(?:add|put|include|append|throw|stick|pop|write(?:\s+down)?|jot(?:\s+down)?|insert|place|save)\s+",
    re.IGNORECASE,
)
_ADD = re.compile(
    r"\b(?:add|put|include|append|throw|stick|pop|write(?:\s+down)?|jot(?:\s+down)?|insert|place|save)"
    r"\s+(?P<items>.+?)\s+(?:to|on|onto|in|into)\s+" + _OWNER + r"(?P<rest>.+)$",
    re.IGNORECASE,
)
_ADD_TO_FIRST_VERB = re.compile(r"\b(?:add|put)\s+(?:to|on|onto)\s+", re.IGNORECASE)
_ADD_TO_FIRST = re.compile(
    r"\b(?:add|put)\s+(?:to|on|onto)\s+" + _OWNER + r"(?P<rest>[\w' -]*?\blist)\s*[:,-]?\s+(?P<items>.+)$",
    re.IGNORECASE,
)
_REMOVE_VERB = re.compile(
    r"\b(?:remove|delete|take|cross|strike|drop|scratch|erase|get\s+rid\s+of|tick)(?:\s+off)?\s+",
    re.IGNORECASE,
)
_REMOVE = re.compile(
    r"\b(?:remove|delete|take|cross|strike|drop|scratch|erase|get\s+rid\s+of|tick)"
    r"(?:\s+off)?\s+(?P<items>.+?)\s+(?:off|from|out\s+of)\s+(?:of\s+)?" + _OWNER + r"(?P<rest>.+)$",
    re.IGNORECASE,
)
_NEED = re.compile(
    r"\b(?:i|we)\s+(?:need|have)\s+to\s+buy\s+(?P<items>.+)$|\b(?:i|we)\s+need\s+(?P<items2>.+)$", re.I
)
# The list named first, then what to do with it: "shopping list: add batteries", "on my to-do list,
# remove call mom". Matched right after the list's name.
_THEN_VERB = re.compile(
    r"[\s:,;-]*(?:please\s+)?(?:add|put|include|append|remove|delete|drop|cross\s+off|take\s+off)"
    r"\s+(?P<items>.+)$",
    re.IGNORECASE,
)
_ITEM_SPLIT = re.compile(
    r"\s*(?:,\s*(?:and|&)\s+|,|;|\s+and\s+|\s+&\s+|\s+plus\s+|\s+as\s+well\s+as\s+)\s*", re.I
)
_ARTICLE = re.compile(r"^(?:some|a|an|the|more)\s+(?!dozen\b|couple\b|few\b|pair\b|lot\b)", re.IGNORECASE)
# What ``_strip_filler`` removes: \s*(?:please|pls|thanks|thank\s+you|for\s+me|too|as\s+well)\s*[.!?]*$
_FILLER_WORD = re.compile(r"(?:please|pls|thanks|thank\s+you|for\s+me|too|as\s+well)\Z", re.IGNORECASE)
_NAME_RUN = re.compile(r"[\w' -]*")


@dataclass(frozen=True)
class ListRequest:
    """What a list request names: the list (None when it names none) and the items (maybe none)."""

    list_name: str | None
    list_source: str
    items: tuple[str, ...]
    items_source: str


def normalize_list_name(name: str) -> str:
    """ "Grocery" -> "shopping", "To-Do" -> "todo", "Packing" -> "packing"."""
    key = " ".join(name.lower().replace("_", " ").split())
    key = re.sub(r"^(?:my|the|our|a)\s+", "", key)
    key = re.sub(r"\s+list$", "", key)
    return LIST_SYNONYMS.get(key, key)


_NOT_NAMES: Final = frozenset(
    {"my", "the", "our", "a", "this", "that", "your", "on", "to", "from", "of", "off", "me", "in", "at",
     "clear", "show", "empty", "delete", "reset", "wipe", "what's", "whats", "is", "view", "read", "tell",
     "open", "see", "check", "erase", "remove", "us", "out", "entire", "whole", "current", "list", "what"}
)  # fmt: skip


def _list_name(text: str) -> tuple[str, str] | None:
    m = _NAMED_LIST.search(text)
    if m:
        words = m.group("name").split()
        for size in (3, 2):
            tail = " ".join(words[-size:]).lower()
            if len(words) >= size and tail in LIST_SYNONYMS:
                return LIST_SYNONYMS[tail], m.group("named").strip()
        # Keep the words after the last verb, owner or preposition: "clear my todo" -> "todo".
        kept: list[str] = []
        for word in words:
            kept = [] if word.lower() in _NOT_NAMES else [*kept, word]
        if kept:
            return normalize_list_name(" ".join(kept)), m.group("named").strip()
    m = _KNOWN_LIST.search(text)
    if m:
        return normalize_list_name(m.group("name")), m.group().strip()
    return None


def _strip_filler(text: str) -> str:
    """``text`` (one line) without a trailing "please", "too", "thanks"..., read from the right
    once (the pattern in the comment above, tried through a long run of punctuation, would read
    the run again from each of its characters)."""
    end = suffix_start(text, r"\s", suffix_start(text, r".!?"))
    word = _FILLER_WORD.search(text, max(0, end - 32), end)
    return text if word is None else text[: suffix_start(text, r"\s", word.start())]


def _search(verb: re.Pattern[str], pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """``pattern.search(text)`` on one line, tried from the first verb of each run of word
    characters, spaces, hyphens and apostrophes only.

    The items of _ADD and _REMOVE take any character, so the first verb decides: a later verb's
    match would be the first's with longer items. The list of _ADD_TO_FIRST is made of such a run,
    so within a run the first verb decides. Either way each character is read a bounded number
    of times.
    """
    at = 0
    while (found := verb.search(text, at)) is not None:
        m = pattern.match(text, found.start())
        if m is not None or pattern is not _ADD_TO_FIRST:
            return m
        run = _NAME_RUN.match(text, found.start())
        at = max(run.end() if run else 0, found.end())
    return None


def split_items(text: str) -> tuple[str, ...]:
    """ "eggs, milk and bread" -> (eggs, milk, bread); articles dropped, quantities kept."""
    text = _strip_filler(text.strip().strip(".!?"))
    items: list[str] = []
    for raw in _ITEM_SPLIT.split(text):
        item = _ARTICLE.sub("", raw.strip().strip("\"'\u201c\u201d\u2018\u2019")).strip()
        if item and item.lower() not in ("and", "&"):
            items.append(item)
    return tuple(items)


def parse_list_request(text: str) -> ListRequest:
    """The list and items a list_add / list_remove / list_show / list_clear request names."""
    stripped = _strip_filler(text.strip().rstrip(".!?"))
    named = _list_name(stripped)
    name, source = named if named else (None, "")
    items: tuple[str, ...] = ()
    items_source = ""
    for verb, pattern in ((_ADD_TO_FIRST_VERB, _ADD_TO_FIRST), (_REMOVE_VERB, _REMOVE), (_ADD_VERB, _ADD)):
        m = _search(verb, pattern, stripped)
        if m:
            rest = m.group("rest")
            # The place added to must be a list ("to my shopping list", "to groceries"), else
            # "put the kettle on" style text would pass for a list name.
            unnamed = re.match(r"(?:\w+\s+)?list\b", rest, re.IGNORECASE)
            if _list_name(rest) is None and unnamed is None and pattern is not _ADD_TO_FIRST:
                continue
            items_source = m.group("items").strip()
            items = split_items(items_source)
            break
    if not items and named:
        at = stripped.lower().find(source.lower())
        m = _THEN_VERB.match(stripped, at + len(source)) if at >= 0 else None
        if m:
            items_source = m.group("items").strip()
            items = split_items(items_source)
    if not items:
        m = _NEED.search(stripped)
        if m:
            items_source = (m.group("items") or m.group("items2") or "").strip()
            if named:
                items_source = re.split(r"\s+(?:on|to|for|in)\s+" + _OWNER, items_source)[0]
            items = split_items(items_source)
    if names_only_a_list(items_source):
        items, items_source = (), ""
    return ListRequest(name, source, items, items_source)


def names_only_a_list(text: str) -> bool:
    """ "to my shopping list", "on the list": a place to put things, not things to put there."""
    return re.fullmatch(r"(?:to|on|onto|in|into|from|off)\b.*\blist", text.strip(), re.IGNORECASE) is not None
