"""``@tool``: a Python function becomes a tool whose argument schema comes from its type hints.

Parameters take ``Annotated[int, Arg(minimum=1)]`` for constraints; the docstring's first paragraph
describes the tool and its ``Args:`` section describes each parameter. A parameter annotated
``ToolContext`` receives the call's context instead of an argument. The result schema comes from a
TypedDict given as ``result=``.

An ``async def`` tool runs on the event loop and is cancelled at its timeout. A plain function
never runs on the event loop, where a long computation would hold up every other call and no
timeout could fire: it runs in a worker thread, or with ``cpu_bound=True`` in a worker process
that is killed when the call's timeout fires (a thread cannot be stopped, a process can).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import types
import typing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from hivemesh.tool.capability import check_intents
from hivemesh.tool.model import JsonObject, Serves, ToolContext, ToolOutput, ToolSpec, ToolTarget


@dataclass(frozen=True)
class Arg:
    """JSON Schema constraints of one parameter (None: not constrained)."""

    description: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    min_items: int | None = None
    max_items: int | None = None
    format: str | None = None

    def schema(self) -> dict[str, Any]:
        names = {
            "exclusive_minimum": "exclusiveMinimum",
            "min_length": "minLength",
            "max_length": "maxLength",
            "min_items": "minItems",
            "max_items": "maxItems",
        }
        return {
            names.get(f.name, f.name): getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) is not None
        }


ToolFunction = Callable[..., ToolOutput | Awaitable[ToolOutput]]


class FunctionTool:
    """A tool backed by a Python function: async for anything that waits, plain for pure work (run
    in a worker thread, or in a worker process when ``cpu_bound``)."""

    def __init__(
        self, function: ToolFunction, spec: ToolSpec, context_param: str | None, *, cpu_bound: bool = False
    ) -> None:
        self._function = function
        self._spec = spec
        self._context_param = context_param
        self._integers = _integer_params(function)
        self._asynchronous = inspect.iscoroutinefunction(function)
        self._cpu_bound = cpu_bound
        self._target = ToolTarget(function.__module__, spec.name)

    @property
    def spec(self) -> ToolSpec:
        return self._spec

    @property
    def cpu_bound(self) -> bool:
        return self._cpu_bound

    @property
    def target(self) -> ToolTarget:
        """How a worker process finds this tool: its module and its name."""
        return self._target

    def call(self, arguments: JsonObject) -> ToolOutput:
        """Run a synchronous tool that takes no context, here and now (what a worker process does)."""
        if self._asynchronous or self._context_param is not None:
            raise TypeError(f"{self._spec.name} cannot be called without its context")
        result = self._function(**self._arguments(arguments))
        if not isinstance(result, ToolOutput):
            raise TypeError(f"{self._spec.name} returned {type(result).__name__}, not ToolOutput")
        return result

    async def run(self, arguments: JsonObject, context: ToolContext) -> ToolOutput:
        if self._cpu_bound:
            if context.offload is not None:
                return await context.offload.in_process(self._target, arguments)
            return await asyncio.to_thread(self.call, arguments)
        kwargs = self._arguments(arguments)
        if self._context_param is not None:
            kwargs[self._context_param] = context
        result: ToolOutput | Awaitable[ToolOutput]
        if self._asynchronous:
            result = self._function(**kwargs)
        else:
            work = functools.partial(self._function, **kwargs)
            result = await (context.offload.in_thread(work) if context.offload else asyncio.to_thread(work))
        if inspect.isawaitable(result):
            return await result
        return result

    def _arguments(self, arguments: JsonObject) -> dict[str, Any]:
        # A protobuf Struct carries every number as a double; integer parameters get ints back.
        return {
            k: int(v) if k in self._integers and isinstance(v, float) else v for k, v in arguments.items()
        }


def tool(
    *,
    name: str | None = None,
    result: type | None = None,
    side_effects: bool = False,
    timeout_s: float = 5.0,
    max_concurrency: int = 16,
    cpu_bound: bool = False,
    serves: Serves | Sequence[Serves] = (),
) -> Callable[[ToolFunction], FunctionTool]:
    """Declare a tool; the module that holds it only has to be imported for the registry to find it.

    ``cpu_bound``: the tool computes for as long as its input makes it (a calculator, a parser), so
    it runs in a worker process that its timeout can kill. Such a tool is a plain function defined
    at the top level of its module (the worker imports it by name), takes no ``ToolContext`` and
    has no side effects (a call cut short must leave nothing half done).

    A plain function cannot have side effects: its thread cannot be stopped at the timeout, so the
    effect could land after the call was reported failed and its idempotency key freed, and the
    retry would do it again. Such a tool is ``async def``.

    ``serves``: the intents the tool serves, each with the slots that fill its arguments, the
    questions for missing ones and how its result reads (see ``Serves``); checked here.
    """

    def wrap(function: ToolFunction) -> FunctionTool:
        description, arg_docs = _parse_docstring(inspect.getdoc(function) or "")
        schema, context_param = arguments_schema(function, arg_docs)
        _check_placement(function, name or function.__name__, context_param, side_effects, cpu_bound)
        spec = ToolSpec(
            name=name or function.__name__,
            description=description,
            arguments_schema=schema,
            result_schema=type_schema(result) if result is not None else {"type": "object"},
            side_effects=side_effects,
            timeout_s=timeout_s,
            max_concurrency=max_concurrency,
            intents=(serves,) if isinstance(serves, Serves) else tuple(serves),
        )
        check_intents(spec)
        return FunctionTool(function, spec, context_param, cpu_bound=cpu_bound)

    return wrap


def _check_placement(
    function: Callable[..., Any], name: str, context_param: str | None, side_effects: bool, cpu_bound: bool
) -> None:
    asynchronous = inspect.iscoroutinefunction(function)
    if side_effects and not asynchronous:
        raise TypeError(
            f"tool {name!r} has side effects, so it must be async def: a plain function runs in a "
            "thread, which its timeout cannot stop"
        )
    if not cpu_bound:
        return
    problem = (
        "is async (it runs on the event loop)"
        if asynchronous
        else "takes a ToolContext (a worker process has none)"
        if context_param is not None
        else "has side effects (a call cut short would leave them half done)"
        if side_effects
        else "is not defined at the top level of its module (a worker process imports it by name)"
        if "<locals>" in function.__qualname__
        else None
    )
    if problem is not None:
        raise TypeError(f"cpu_bound tool {name!r} {problem}")


def arguments_schema(function: Callable[..., Any], docs: dict[str, str]) -> tuple[dict[str, Any], str | None]:
    hints = get_type_hints(function, include_extras=True)
    properties: dict[str, Any] = {}
    required: list[str] = []
    context_param = None
    for param in inspect.signature(function).parameters.values():
        hint = hints.get(param.name, Any)
        if _strip(hint) is ToolContext:
            context_param = param.name
            continue
        prop = type_schema(hint)
        if param.name in docs and "description" not in prop:
            prop["description"] = docs[param.name]
        if param.default is inspect.Parameter.empty:
            required.append(param.name)
        elif param.default is not None:
            prop["default"] = param.default
        properties[param.name] = prop
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema, context_param


def type_schema(hint: Any) -> dict[str, Any]:
    """The JSON Schema of a type hint: scalars, lists, Literal enums, optionals and TypedDicts."""
    constraints: dict[str, Any] = {}
    if get_origin(hint) is typing.Annotated:
        hint, *extras = get_args(hint)
        for extra in extras:
            if isinstance(extra, Arg):
                constraints.update(extra.schema())
    hint = _strip(hint)
    origin = get_origin(hint)
    schema: dict[str, Any]
    if hint is bool:
        schema = {"type": "boolean"}
    elif hint is int:
        schema = {"type": "integer"}
    elif hint is float:
        schema = {"type": "number"}
    elif hint is str:
        schema = {"type": "string"}
    elif origin is Literal:
        schema = {"enum": list(get_args(hint))}
    elif origin is list:
        (item,) = get_args(hint)
        schema = {"type": "array", "items": type_schema(item)}
    elif typing.is_typeddict(hint):
        item_hints = get_type_hints(hint, include_extras=True)
        schema = {
            "type": "object",
            "properties": {k: type_schema(v) for k, v in item_hints.items()},
            "required": sorted(hint.__required_keys__),
        }
    elif hint is dict or origin is dict:
        schema = {"type": "object"}
    elif hint is Any:
        schema = {}
    else:
        raise TypeError(f"no JSON Schema for the type {hint!r}")
    return {**schema, **constraints}


def _strip(hint: Any) -> Any:
    """``X | None`` and ``Optional[X]`` -> ``X``; ``Annotated`` is kept for type_schema."""
    if get_origin(hint) in (Union, types.UnionType):
        members = [a for a in get_args(hint) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return hint


def _integer_params(function: Callable[..., Any]) -> frozenset[str]:
    hints = get_type_hints(function, include_extras=True)
    found = set()
    for name, hint in hints.items():
        plain = get_args(hint)[0] if get_origin(hint) is typing.Annotated else hint
        if _strip(plain) is int:
            found.add(name)
    return frozenset(found)


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The description (text before ``Args:``) and each argument's description."""
    head, _, tail = doc.partition("\nArgs:")
    described: dict[str, str] = {}
    current = ""
    for line in tail.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not line.startswith(" " * 8) and ":" in stripped:
            current, _, text = stripped.partition(":")
            described[current.strip()] = text.strip()
        elif current:
            described[current] = f"{described[current]} {stripped}"
    return " ".join(head.split()), described
