from __future__ import annotations

import os
from typing import Annotated, Literal, TypedDict

import pytest

from hivemesh.mesh.errors import InvalidArgument
from hivemesh.tool.arguments import check, compile_schema
from hivemesh.tool.decorator import Arg, tool
from hivemesh.tool.model import ToolContext, ToolOutput
from tests.tool.cpu_tools import spin
from tests.tool.fakes import context, deps


class Greeting(TypedDict):
    text: str


@tool(result=Greeting, side_effects=True, timeout_s=2.5, max_concurrency=3)
async def greet(
    ctx: ToolContext,
    name: Annotated[str, Arg(min_length=1, max_length=20)],
    times: Annotated[int, Arg(minimum=1, maximum=5)] = 1,
    tone: Literal["warm", "dry"] = "warm",
    tags: list[str] | None = None,
) -> ToolOutput:
    """Greet someone.

    More words about greeting.

    Args:
        name: Who to greet.
        times: How many times.
    """
    return ToolOutput({"text": f"hi {name}" * times}, f"{tone} {ctx.call.task_id}")


def test_spec_comes_from_hints_and_docstring() -> None:
    spec = greet.spec
    assert (spec.name, spec.side_effects, spec.timeout_s, spec.max_concurrency) == ("greet", True, 2.5, 3)
    assert spec.description == "Greet someone. More words about greeting."
    assert spec.arguments_schema == {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 20, "description": "Who to greet."},
            "times": {
                "type": "integer",
                "minimum": 1,
                "maximum": 5,
                "default": 1,
                "description": "How many times.",
            },
            "tone": {"enum": ["warm", "dry"], "default": "warm"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    }
    assert spec.result_schema == {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
    }


async def test_context_is_injected_and_whole_floats_become_ints() -> None:
    output = await greet.run({"name": "ada", "times": 2.0}, context("greet", deps(), task_id="t-9"))
    assert output == ToolOutput({"text": "hi adahi ada"}, "warm t-9")


def test_unsupported_types_fail_at_declaration() -> None:
    with pytest.raises(TypeError):

        @tool()
        def bad(value: set[str]) -> ToolOutput:
            return ToolOutput({}, "")


@pytest.mark.parametrize(
    ("arguments", "fields"),
    [
        ({}, ["arguments.name"]),
        ({"name": ""}, ["arguments.name"]),
        ({"name": "x", "times": 9}, ["arguments.times"]),
        ({"name": "x", "times": 1.5}, ["arguments.times"]),
        ({"name": "x", "tone": "loud"}, ["arguments.tone"]),
        ({"name": "x", "tags": ["a", 3]}, ["arguments.tags[1]"]),
        ({"name": "x", "extra": 1, "more": 2}, ["arguments.extra", "arguments.more"]),
    ],
)
def test_argument_violations_name_their_json_path(arguments: dict[str, object], fields: list[str]) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check("greet", compile_schema(greet.spec.arguments_schema), arguments)
    assert caught.value.reason == "INVALID_TOOL_ARGUMENTS"
    assert [v.field for v in caught.value.violations] == fields
    assert caught.value.metadata["field"] == fields[0]


def test_a_plain_function_with_side_effects_is_refused() -> None:
    # Its thread could not be stopped at the timeout, so a retry could repeat its effect.
    with pytest.raises(TypeError, match="must be async def"):

        @tool(side_effects=True)
        def charge(amount: float) -> ToolOutput:
            return ToolOutput({}, "")


def test_a_cpu_bound_tool_must_be_a_plain_pure_top_level_function() -> None:
    async def waits(x: int) -> ToolOutput:
        return ToolOutput({}, "")

    def with_context(ctx: ToolContext, x: int) -> ToolOutput:
        return ToolOutput({}, "")

    def nested(x: int) -> ToolOutput:
        return ToolOutput({}, "")

    for function, problem in (
        (waits, "is async"),
        (with_context, "takes a ToolContext"),
        (nested, "not defined at the top level"),
    ):
        with pytest.raises(TypeError, match=problem):
            tool(cpu_bound=True)(function)


async def test_a_cpu_bound_tool_called_without_a_pool_runs_in_a_thread() -> None:
    output = await spin.run({"seconds": 0}, context("spin", deps()))
    assert output.value["pid"] == os.getpid()
