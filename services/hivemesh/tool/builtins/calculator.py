"""calculator: arithmetic through the safe evaluator (never ``eval``).

``cpu_bound``: what an expression costs depends on what it says. The evaluator bounds that cost,
and the worker process its 2 s timeout kills bounds whatever the bounds miss."""

from __future__ import annotations

from typing import Annotated, TypedDict

from hivemesh.tool.decorator import Arg, tool
from hivemesh.tool.expression import evaluate, format_number
from hivemesh.tool.model import Fill, Serves, ToolOutput


class CalculatorResult(TypedDict):
    value: float
    expression: str


@tool(
    result=CalculatorResult,
    timeout_s=2.0,
    cpu_bound=True,
    serves=Serves(
        "calculator",
        {"expression": Fill("expression", question="What would you like me to calculate?")},
    ),
)
def calculator(expression: Annotated[str, Arg(min_length=1, max_length=256)]) -> ToolOutput:
    """Evaluate arithmetic: + - * / % ^, parentheses, unary minus, percentages ("15% of 80",
    "30% off 279", "200 + 10%"), sqrt, round, abs and factorial (n!).

    Args:
        expression: The arithmetic, e.g. "12 * (3 + 4)" or "15% of 80".
    """
    value = evaluate(expression)
    return ToolOutput({"value": float(value), "expression": expression.strip()}, format_number(value))
