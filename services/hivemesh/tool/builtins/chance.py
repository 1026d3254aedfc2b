"""roll_dice and flip_coin, drawn from the service's random source (seedable for tests)."""

from __future__ import annotations

from typing import Annotated, Literal, TypedDict

from hivemesh.tool.decorator import Arg, tool
from hivemesh.tool.model import Fill, Serves, ToolContext, ToolOutput


class DiceResult(TypedDict):
    rolls: list[int]
    total: int
    sides: int
    count: int


@tool(
    name="roll_dice",
    result=DiceResult,
    timeout_s=1.0,
    serves=Serves("roll_dice", {"sides": Fill("sides"), "count": Fill("count")}),
)
def roll_dice(
    context: ToolContext,
    sides: Annotated[int, Arg(minimum=2, maximum=1000)] = 6,
    count: Annotated[int, Arg(minimum=1, maximum=100)] = 1,
) -> ToolOutput:
    """Roll dice.

    Args:
        sides: Faces on each die (6 when left out).
        count: How many dice (1 when left out).
    """
    rolls = [context.deps.random.randint(1, sides) for _ in range(count)]
    total = sum(rolls)
    display = str(total) if count == 1 else f"{' + '.join(map(str, rolls))} = {total}"
    return ToolOutput({"rolls": rolls, "total": total, "sides": sides, "count": count}, display)


class CoinResult(TypedDict):
    side: Literal["heads", "tails"]


@tool(name="flip_coin", result=CoinResult, timeout_s=1.0, serves=Serves("flip_coin"))
def flip_coin(context: ToolContext) -> ToolOutput:
    """Flip a coin: heads or tails."""
    side = context.deps.random.choice(("heads", "tails"))
    return ToolOutput({"side": side}, side.capitalize())
