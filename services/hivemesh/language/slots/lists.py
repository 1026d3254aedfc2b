"""Named lists and their items: "add eggs, milk and bread to my shopping list".

List names are normalised so the same list is found however it is called: "grocery list" and
"groceries" are the ``shopping`` list, "to-do" and "to do" the ``todo`` list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

LIST_SYNONYMS: Final = {
    "shopping": "shopping", "grocery": "shopping", "groceries": "shopping", "shoping": "shopping",
    "shop": "shopping", "supermarket": "shopping", "store": "shopping",
    "todo": "todo", "to-do": "todo", "to do": "todo", "todos": "todo", "to-dos": "todo",
    "task": "todo", "tasks": "todo", "things to do": "todo",
}  # fmt: skip

_OWNER = r"(?:(?:my|the|our|a|this|that|your)\s+)?"
_NAME = r"(?P<name>[\w'-]+(?:\s+[\w'-]+){0,2}?)"
# "my shopping list", "the to-do list", "shopping", "my groceries".
_NAMED_LIST = re.compile(rf"\b{_OWNER}{_NAME}\s+list\b", re.IGNORECASE)
_KNOWN_LIST = re.compile(
    r"\b"
    + _OWNER
    + r"(?P<name>"
    + "|".join(sorted(map(re.escape, LIST_SYNONYMS), key=len, reverse=True))
    + r")\b",
    re.IGNORECASE,
)
_ADD = re.compile(
    r"\b(?:add|put|include|append|throw|stick|pop|write(?:\s+down)?|jot(?:\s+down)?|insert|place|save)"
    r"\s+(?P<items>.+?)\s+(?:to|on|onto|in|into)\s+" + _OWNER + r"(?P<rest>.+)$",
    re.IGNORECASE,
)
_ADD_TO_FIRST = re.compile(
    r"\b(?:add|put)\s+(?:to|on|onto)\s+" + _OWNER + r"(?P<rest>[\w' -]*?\blist)\s*[:,-]?\s+(?P<items>.+)$",
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
_ITEM_SPLIT = re.compile(
    r"\s*(?:,\s*(?:and|&)\s+|,|;|\s+and\s+|\s+&\s+|\s+plus\s+|\s+as\s+well\s+as\s+)\s*", re.I
)
_ARTICLE = re.compile(r"^(?:some|a|an|the|more)\s+(?!dozen\b|couple\b|few\b|pair\b|lot\b)", re.IGNORECASE)
_TRAILING = re.compile(
    r"\s*(?:please|pls|thanks|thank\s+you|for\s+me|too|as\s+well)\s*[.!?]*$", re.IGNORECASE
)


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
                return LIST_SYNONYMS[tail], m.group().strip()
        # Keep the words after the last verb, owner or preposition: "clear my todo" -> "todo".
        kept: list[str] = []
        for word in words:
            kept = [] if word.lower() in _NOT_NAMES else [*kept, word]
        if kept:
            return normalize_list_name(" ".join(kept)), m.group().strip()
    m = _KNOWN_LIST.search(text)
    if m:
        return normalize_list_name(m.group("name")), m.group().strip()
    return None


def split_items(text: str) -> tuple[str, ...]:
    """ "eggs, milk and bread" -> (eggs, milk, bread); articles dropped, quantities kept."""
    text = _TRAILING.sub("", text.strip().strip(".!?"))
    items: list[str] = []
    for raw in _ITEM_SPLIT.split(text):
        item = _ARTICLE.sub("", raw.strip().strip("\"'\u201c\u201d\u2018\u2019")).strip()
        if item and item.lower() not in ("and", "&"):
            items.append(item)
    return tuple(items)


def parse_list_request(text: str) -> ListRequest:
    """The list and items a list_add / list_remove / list_show / list_clear request names."""
    stripped = _TRAILING.sub("", text.strip().rstrip(".!?"))
    named = _list_name(stripped)
    name, source = named if named else (None, "")
    items: tuple[str, ...] = ()
    items_source = ""
    for pattern in (_ADD_TO_FIRST, _REMOVE, _ADD):
        m = pattern.search(stripped)
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
