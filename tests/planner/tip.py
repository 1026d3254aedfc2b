"""The tip tool of docs/tools.md ("Serving an intent"), as a user would add it: this module and
training examples of its intent are all it takes (see test_new_intent.py)."""

from __future__ import annotations

from typing import Annotated, TypedDict

from hivemesh.tool.decorator import Arg, tool
from hivemesh.tool.model import Fill, Serves, ToolOutput


class TipResult(TypedDict):
    tip: float
    total: float
    percent: float


@tool(
    result=TipResult,
    timeout_s=1.0,
    max_concurrency=32,
    serves=Serves(
        "tip",
        {
            "bill": Fill("number", question="How much is the bill?"),
            "percent": Fill("percent"),
        },
        reply="A {percent:g}% tip is {tip:.2f}, {total:.2f} in all.",
    ),
)
def tip(
    bill: Annotated[float, Arg(exclusive_minimum=0)],
    percent: Annotated[float, Arg(minimum=0, maximum=100)] = 15,
) -> ToolOutput:
    """Work out a tip and the total to pay.

    Args:
        bill: The bill before the tip.
        percent: The tip, in percent of the bill.
    """
    amount = round(bill * percent / 100, 2)
    total = round(bill + amount, 2)
    return ToolOutput({"tip": amount, "total": total, "percent": percent}, f"Tip {amount:.2f}")
