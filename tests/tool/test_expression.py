from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hivemesh.mesh.errors import InvalidArgument
from hivemesh.tool.expression import evaluate, format_number


@pytest.mark.parametrize(
    ("expression", "shown"),
    [
        ("12 * (3 + 4)", "84"),
        ("15% of 80", "12"),
        ("30% off 279", "195.3"),
        ("200 + 10%", "220"),
        ("200 - 10%", "180"),
        ("50%", "0.5"),
        ("10 % 3", "1"),
        ("-2^2", "-4"),
        ("(-2)^2", "4"),
        ("2^3^2", "512"),
        ("2^-1", "0.5"),
        ("--3", "3"),
        ("0.1 + 0.2", "0.3"),
        ("1/3", "0.3333333333"),
        ("7 / 2", "3.5"),
        ("sqrt(16)", "4"),
        ("sqrt(2)", "1.414213562"),
        ("round(2.5)", "3"),
        ("round(-2.5)", "-3"),
        ("round(3.14159, 2)", "3.14"),
        ("abs(-7.5)", "7.5"),
        ("5!", "120"),
        ("0!", "1"),
        ("factorial(6)", "720"),
        ("3 \u00d7 4 \u00f7 2 \u2212 1", "5"),  # typeset times, divide and minus signs
        ("2 ** 10", "1024"),
        ("1e3 + 1", "1001"),
        ("2^60", "1152921504606846976"),
        ("2^70", "1.180591621e+21"),
    ],
)
def test_evaluates(expression: str, shown: str) -> None:
    assert format_number(evaluate(expression)) == shown


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("1/0", "DIVISION_BY_ZERO"),
        ("5 % 0", "DIVISION_BY_ZERO"),
        ("0^-1", "DIVISION_BY_ZERO"),
        ("171!", "OVERFLOW"),
        ("10^10^9", "OVERFLOW"),
        ("1e308 * 10", "OVERFLOW"),
        ("sqrt(-1)", "MATH_DOMAIN"),
        ("(-8)^(1/3)", "MATH_DOMAIN"),
        ("2.5!", "MATH_DOMAIN"),
        ("(1 + 2", "INVALID_EXPRESSION"),
        ("2 +", "INVALID_EXPRESSION"),
        ("", "INVALID_EXPRESSION"),
        ("2 3", "INVALID_EXPRESSION"),
        ("__import__('os')", "INVALID_EXPRESSION"),
        ("foo(1)", "INVALID_EXPRESSION"),
        ("sqrt 4", "INVALID_EXPRESSION"),
        ("round(1, 2, 3)", "INVALID_EXPRESSION"),
    ],
)
def test_reports_errors_on_the_expression_field(expression: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        evaluate(expression)
    assert caught.value.reason == reason
    assert caught.value.metadata["field"] == "arguments.expression"


def test_reports_the_position_of_an_unexpected_character() -> None:
    with pytest.raises(InvalidArgument, match="position 3"):
        evaluate("3 $ 4")


small = st.integers(min_value=-(10**6), max_value=10**6)


@given(small, small, small)
def test_integer_arithmetic_matches_python(a: int, b: int, c: int) -> None:
    assert evaluate(f"{a} + {b} * ({c})") == a + b * c
    if b:
        assert evaluate(f"({a}) / ({b})") == Fraction(a, b)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Fraction(84), "84"),
        (8.04672, "8.04672"),
        (1e-9, "1e-09"),
        (1e22, "1e+22"),
        (0.0, "0"),
        (2 / 3, "0.6666666667"),
    ],
)
def test_format_number(value: Fraction | float, shown: str) -> None:
    assert format_number(value) == shown
