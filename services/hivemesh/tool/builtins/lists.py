"""Todo and shopping lists: list_add, list_remove, list_show, list_clear.

A list is a ``list`` record in memory keyed by its lower-cased name, value ``{"items": [...]}``.
Writes are conditional on the version read and retried on conflict, so two concurrent adds to the
same list both land.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

from hivemesh.mesh.errors import Aborted
from hivemesh.tool.builtins._owner import record_owner
from hivemesh.tool.decorator import Arg, tool
from hivemesh.tool.model import Fill, Serves, ToolContext, ToolOutput
from hivemesh.tool.ports import RecordOwner, VersionConflict

LIST_KIND = "list"
MAX_ITEMS = 500
_ATTEMPTS = 8

LIST_NAME = Arg(
    min_length=1, max_length=64, pattern=r"\S", description='The list, e.g. "shopping" or "todo".'
)
ITEMS = Arg(min_items=1, max_items=100, description='The items, e.g. ["milk", "eggs"].')
Item = Annotated[str, Arg(min_length=1, max_length=200, pattern=r"\S")]


class ListResult(TypedDict):
    list: str
    items: list[str]
    changed: list[str]
    unchanged: list[str]


def _key(name: str) -> str:
    return " ".join(name.split()).lower()


def _clean(items: list[str]) -> list[str]:
    return [" ".join(i.split()) for i in items]


def _render(name: str, items: list[str]) -> str:
    return f"Your {name} list: {', '.join(items)}" if items else f"Your {name} list is empty"


Change = Callable[[list[str]], tuple[list[str], list[str], list[str]]]


async def _update(context: ToolContext, owner: RecordOwner, key: str, change: Change) -> ListResult:
    for _ in range(_ATTEMPTS):
        stored = await context.deps.records.get(owner, LIST_KIND, key)
        current = [str(i) for i in (stored.value.get("items", []) if stored else [])]
        items, changed, unchanged = change(current)
        if stored is not None and items == current:
            return {"list": key, "items": items, "changed": changed, "unchanged": unchanged}
        try:
            await context.deps.records.put(
                owner, LIST_KIND, key, {"items": items}, expected_version=stored.version if stored else -1
            )
        except VersionConflict:
            continue
        return {"list": key, "items": items, "changed": changed, "unchanged": unchanged}
    raise Aborted(f"the {key} list kept changing; try again", reason="LIST_CONTENDED", metadata={"list": key})


@tool(
    name="list_add",
    result=ListResult,
    side_effects=True,
    timeout_s=5.0,
    serves=Serves(
        "list_add",
        {
            "list": Fill("list_name", question="Which list should I add to?"),
            "items": Fill("items", question="What should I add?"),
        },
    ),
)
async def list_add(
    context: ToolContext, list: Annotated[str, LIST_NAME], items: Annotated[list[Item], ITEMS]
) -> ToolOutput:
    """Add items to a list (items already on it are not added twice)."""
    key, new = _key(list), _clean(items)

    def change(
        current: builtins.list[str],
    ) -> tuple[builtins.list[str], builtins.list[str], builtins.list[str]]:
        seen = {i.lower() for i in current}
        added: builtins.list[str] = []
        present: builtins.list[str] = []
        for item in new:
            (present if item.lower() in seen else added).append(item)
            seen.add(item.lower())
        return (current + added)[:MAX_ITEMS], added, present

    result = await _update(context, record_owner(context), key, change)
    added = result["changed"]
    head = f"Added {', '.join(added)} to your {key} list" if added else f"Already on your {key} list"
    return ToolOutput(dict(result), f"{head}: {', '.join(result['items'])}")


@tool(
    name="list_remove",
    result=ListResult,
    side_effects=True,
    timeout_s=5.0,
    serves=Serves(
        "list_remove",
        {
            "list": Fill("list_name", question="Which list should I remove it from?"),
            "items": Fill("items", question="What should I remove?"),
        },
    ),
)
async def list_remove(
    context: ToolContext, list: Annotated[str, LIST_NAME], items: Annotated[list[Item], ITEMS]
) -> ToolOutput:
    """Remove items from a list (matching ignores case)."""
    key, gone = _key(list), _clean(items)
    wanted = {i.lower() for i in gone}

    def change(
        current: builtins.list[str],
    ) -> tuple[builtins.list[str], builtins.list[str], builtins.list[str]]:
        kept = [i for i in current if i.lower() not in wanted]
        removed = [i for i in current if i.lower() in wanted]
        found = {i.lower() for i in removed}
        return kept, removed, [i for i in gone if i.lower() not in found]

    result = await _update(context, record_owner(context), key, change)
    if not result["changed"]:
        return ToolOutput(dict(result), f"{', '.join(gone)} not on your {key} list")
    return ToolOutput(
        dict(result), f"Removed {', '.join(result['changed'])}. {_render(key, result['items'])}"
    )


@tool(
    name="list_show",
    result=ListResult,
    timeout_s=5.0,
    serves=Serves("list_show", {"list": Fill("list_name", question="Which list do you want to see?")}),
)
async def list_show(context: ToolContext, list: Annotated[str, LIST_NAME]) -> ToolOutput:
    """Show the items of a list."""
    key = _key(list)
    stored = await context.deps.records.get(record_owner(context), LIST_KIND, key)
    items = [str(i) for i in (stored.value.get("items", []) if stored else [])]
    value: dict[str, Any] = {"list": key, "items": items, "changed": [], "unchanged": []}
    return ToolOutput(value, _render(key, items))


@tool(
    name="list_clear",
    result=ListResult,
    side_effects=True,
    timeout_s=5.0,
    serves=Serves("list_clear", {"list": Fill("list_name", question="Which list should I clear?")}),
)
async def list_clear(context: ToolContext, list: Annotated[str, LIST_NAME]) -> ToolOutput:
    """Remove every item of a list."""
    key = _key(list)
    owner = record_owner(context)
    stored = await context.deps.records.get(owner, LIST_KIND, key)
    removed = [str(i) for i in (stored.value.get("items", []) if stored else [])]
    await context.deps.records.delete(owner, LIST_KIND, key)
    value: dict[str, Any] = {"list": key, "items": [], "changed": removed, "unchanged": []}
    count = len(removed)
    return ToolOutput(value, f"Cleared your {key} list ({count} item{'' if count == 1 else 's'})")
