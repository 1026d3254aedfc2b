from __future__ import annotations

import math
import time
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hivemesh.mesh.errors import InvalidArgument
from hivemesh.tool.expression import MAX_DEPTH, MAX_EXACT_BITS, evaluate, format_number


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
        ("(" * 256, "EXPRESSION_TOO_DEEP"),
        ("-" * 100 + "1", "EXPRESSION_TOO_DEEP"),
        ("2^" * 70 + "2", "EXPRESSION_TOO_DEEP"),
        ("sqrt(" * 70 + "4" + ")" * 70, "EXPRESSION_TOO_DEEP"),
        ("1e999999999", "OVERFLOW"),
        ("2^5000", "OVERFLOW"),
        ("(1/3)^-10000", "OVERFLOW"),
        ("1.5^1000000000000", "OVERFLOW"),
        ("2^2^2^2^2^2", "OVERFLOW"),
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


# --- bounded cost ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # (1 + 1e-20)^1e9 = e^(1e-11): its exact value has twenty billion digits.
        ("1.00000000000000000001^1000000000", 1.00000000001),
        ("(1.00000000000000000001^1000000000 - 1) * 10^11", 1.000000000005),
        ("1.0001^1000000", math.exp(1000000 * math.log1p(1e-4))),
        ("0.9999^1000000", math.exp(1000000 * math.log1p(-1e-4))),
        ("(1 + 1/1000000007)^(1000000007)", math.exp(1000000007 * math.log1p(1 / 1000000007))),
        ("1e-999999999", 0.0),
        ("0.1^1000", 0.0),
        ("round(1e300, 2)", 1e300),
    ],
)
def test_huge_exact_values_are_computed_to_the_digits_kept(expression: str, expected: float) -> None:
    started = time.perf_counter()
    value = evaluate(expression)
    assert time.perf_counter() - started < 0.5
    assert float(value) == pytest.approx(expected, rel=1e-12, abs=0.0)


def test_nesting_up_to_the_bound_is_fine() -> None:
    assert evaluate("(" * MAX_DEPTH + "1" + ")" * MAX_DEPTH) == 1


def test_the_depth_error_names_the_position() -> None:
    with pytest.raises(
        InvalidArgument, match=f"deeper than {MAX_DEPTH} levels \\(at position {MAX_DEPTH + 1}\\)"
    ):
        evaluate("(" * 256)


NUMBERS = ("1.00000000000000000001", "0.9999999999", "1e300", "1e-300", "10", "3", "7", "0.5", "1000000007")


def expressions() -> st.SearchStrategy[str]:
    def combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(children, st.sampled_from(["^", "*", "/", "+", "-", "%"]), children).map(" ".join),
            children.map(lambda c: f"({c})"),
            children.map(lambda c: f"-{c}"),
            children.map(lambda c: f"sqrt({c})"),
            children.map(lambda c: f"round({c}, 3)"),
        )

    return st.recursive(st.sampled_from(NUMBERS), combine, max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(expressions())
def test_any_expression_costs_little(expression: str) -> None:
    # Powers of powers of long fractions are where exact arithmetic explodes; each answer here is
    # a value within bounds or a clear error, in a few milliseconds.
    started = time.perf_counter()
    value: Fraction | float = 0.0
    field = "arguments.expression"
    try:
        value = evaluate(expression)
    except InvalidArgument as refused:
        field = refused.metadata["field"]
    assert time.perf_counter() - started < 0.5, expression
    assert field == "arguments.expression"
    if isinstance(value, Fraction):
        assert value.numerator.bit_length() <= MAX_EXACT_BITS
        assert value.denominator.bit_length() <= MAX_EXACT_BITS
